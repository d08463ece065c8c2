"""tracekit._event.Event: a set() a signal handler may call while the interrupted thread holds the lock."""

from __future__ import annotations

import threading
import time

from tracekit._event import Event
from tracekit._settings import Settings
from tracekit.exporters._otlp import OTLPSpanExporter


def test_it_behaves_as_threading_event() -> None:
    event = Event()
    assert (event.is_set(), event.wait(0.01)) == (False, False)
    threading.Timer(0.05, event.set).start()
    assert event.wait(5.0) is True
    event.clear()
    assert event.is_set() is False


def test_a_set_under_a_lock_held_by_the_interrupted_thread_gives_up_in_time() -> None:
    event = Event()
    with event._condition:  # what a handler sees when it interrupted this thread inside set()
        started = time.monotonic()
        assert event.set_from_signal_handler(patience=0.05) is False
        assert time.monotonic() - started < 1.0
    assert event.is_set() is False


def test_a_set_waits_out_another_thread_holding_the_lock_for_an_instant() -> None:
    event = Event()
    holding = threading.Event()

    def hold() -> None:
        with event._condition:
            holding.set()
            time.sleep(0.01)

    worker = threading.Thread(target=hold)
    worker.start()
    holding.wait(5.0)
    assert event.set_from_signal_handler(patience=1.0) is True
    worker.join(5.0)
    assert event.is_set() is True


def test_begin_shutdown_interrupted_inside_itself_returns_at_once() -> None:
    # A SIGTERM that lands while the exit flush is inside begin_shutdown(): the handler's own
    # call must not wait for the lock the interrupted call holds (it hung a Pool worker).
    exporter = OTLPSpanExporter(Settings(), "http://127.0.0.1:9/v1/traces")
    exporter._closing = True
    with exporter._closing_now._condition:
        started = time.monotonic()
        exporter.begin_shutdown()
        assert time.monotonic() - started < 0.5
