"""Forced failures inside tracekit's HTTP code never reach the caller nor change what it gets."""

from __future__ import annotations

import importlib
import urllib.error
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
from httpcheck import CLIENTS

from tracekit import _http
from tracekit.testing import SpanRecorder

ERRORS: dict[str, type[BaseException]] = {
    "httpx": httpx.ConnectError,
    "requests": requests.exceptions.ConnectionError,
    "urllib3": urllib3.exceptions.MaxRetryError,
    "urllib": urllib.error.URLError,
    "aiohttp_client": aiohttp.ClientConnectorError,
}


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("forced internal failure")


@pytest.mark.parametrize("part", ["describe", "inject", "response_info"])
@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_failure_in_the_wrapper_leaves_the_result_unchanged(
    name: str,
    part: str,
    http_spans: SpanRecorder,
    asgi_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    url = asgi_server.url("/reply-headers")
    expected = CLIENTS[name](url)
    client = importlib.import_module(f"tracekit.integrations.{name}").CLIENT
    monkeypatch.setattr(client, part, _fail)
    assert CLIENTS[name](url) == expected
    assert [(integration, str(exc)) for integration, exc in guarded_errors] == [
        (name, "forced internal failure")
    ]
    guarded_errors.clear()
    # One span from the first call. A failing describe makes none; a failing inject ends the span it
    # had started; a failing response_info still ends its span. When the requests layer gives up,
    # urllib3 underneath makes the span instead.
    expected_spans = 1 + {"describe": 0, "inject": 1, "response_info": 1}[part]
    if name == "requests" and part != "response_info":
        expected_spans += 1
    assert [span.name for span in http_spans.spans] == ["GET"] * expected_spans


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_failure_while_recording_an_exception_reraises_the_original(
    name: str,
    http_spans: SpanRecorder,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    monkeypatch.setattr(_http, "qualified_name", _fail)
    with pytest.raises(ERRORS[name]):
        CLIENTS[name](f"http://127.0.0.1:{closed_port}/")
    assert guarded_errors
    assert {integration for integration, _ in guarded_errors} == {name}
    guarded_errors.clear()


@pytest.mark.parametrize("part", ["_build", "set_known_attributes"])
@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_failure_inside_tracekits_tracer_leaves_the_result_unchanged(
    name: str,
    part: str,
    http_spans: SpanRecorder,
    asgi_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    guarded_errors: list[tuple[str, BaseException]],
) -> None:
    from tracekit._tracer import Tracer

    url = asgi_server.url("/reply-headers")
    expected = CLIENTS[name](url)
    http_spans.clear()
    monkeypatch.setattr(Tracer, part, _fail)
    assert CLIENTS[name](url) == expected
    # When the requests layer cannot make its span, urllib3 underneath tries (and fails) too.
    layers = {name, "urllib3"} if (name, part) == ("requests", "_build") else {name}
    assert {integration for integration, _ in guarded_errors} == layers
    assert {str(exc) for _, exc in guarded_errors} == {"forced internal failure"}
    guarded_errors.clear()
    # No span could be made; or it was made, and still ended without its response attributes.
    made = [span for span in http_spans.spans if span.name == "GET"]
    assert all(span.end_time is not None for span in made)
    assert all("http.response.status_code" not in (span.attributes or {}) for span in made)
