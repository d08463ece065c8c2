"""The shared server-span helpers: hosts, proxies' client addresses, exclusions, configuration."""

from __future__ import annotations

import pytest

from tracekit import _http_server
from tracekit._http_server import DEFAULT_EXCLUDED_PATHS, excluded, forwarded_for, server_config, split_host
from tracekit.testing import capture_spans


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        ("example.com", "http", ("example.com", 80)),
        ("example.com", "https", ("example.com", 443)),
        ("example.com:8080", "http", ("example.com", 8080)),
        ("127.0.0.1:9", "ws", ("127.0.0.1", 9)),
        ("[::1]:8443", "https", ("::1", 8443)),
        ("[::1]", "wss", ("::1", 443)),
        ("example.com:", "http", ("example.com", 80)),
        ("example.com:x", "ftp", ("example.com", None)),
    ],
)
def test_split_host(host: str, scheme: str, expected: tuple[str, int | None]) -> None:
    assert split_host(host, scheme) == expected
    assert split_host(host, scheme) == expected  # from the cache


@pytest.mark.parametrize(
    ("forwarded", "x_forwarded_for", "expected"),
    [
        (None, "203.0.113.9", "203.0.113.9"),
        (None, " 203.0.113.9 , 10.0.0.1", "203.0.113.9"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", None, "192.0.2.60"),
        ('For="[2001:db8:cafe::17]:4711"', None, "2001:db8:cafe::17"),
        ("for=192.0.2.43:8080, for=198.51.100.17", "10.9.9.9", "192.0.2.43"),
        ("proto=https", "198.51.100.1", "198.51.100.1"),
        ("for=unknown", None, "unknown"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_the_original_client_behind_proxies(
    forwarded: str | None, x_forwarded_for: str | None, expected: str | None
) -> None:
    # RFC 7239 section 4 (and its examples); X-Forwarded-For as proxies write it.
    assert forwarded_for(forwarded, x_forwarded_for) == expected


def test_the_default_exclusions_are_exact_paths() -> None:
    assert (
        frozenset({"/health", "/healthz", "/readyz", "/livez", "/ping", "/metrics"}) == DEFAULT_EXCLUDED_PATHS
    )
    with capture_spans() as _:
        config = server_config("asgi")
        assert config is not None
        for path in DEFAULT_EXCLUDED_PATHS:
            assert excluded(config, "http", "h", path, "verbose=1")
        for path in ("/health/", "/healthcheck", "/api/health", "/", "/PING"):
            assert not excluded(config, "http", "h", path, "")


def test_patterns_are_searched_in_the_full_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", r"^https://internal\.,token=")
    monkeypatch.setenv("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "admin")
    with capture_spans() as _:
        config = server_config("wsgi")
        assert config is not None
        assert excluded(config, "https", "internal.example", "/a", "")
        assert excluded(config, "http", "h", "/a", "x=1&token=2")
        assert not excluded(config, "http", "internal.example", "/health", "")
        django = server_config("django")
        assert django is not None
        assert excluded(django, "http", "h", "/admin/", "")
        assert not excluded(django, "https", "internal.example", "/a", "")


def test_no_configuration_without_tracekit_or_when_disabled() -> None:
    assert server_config("asgi") is None
    with capture_spans(disabled=True):
        assert server_config("asgi") is None
    with capture_spans() as _:
        first = server_config("flask")
        assert first is not None
        assert server_config("flask") is first
    with capture_spans(traceresponse=True) as _:
        again = server_config("flask")
        assert again is not None
        assert again is not first
        assert again.traceresponse


def test_the_propagator_is_looked_up_again_when_replaced() -> None:
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator

    from tracekit._propagation import make_propagator

    with capture_spans(propagators=["tracecontext"]) as _:
        config = server_config("asgi")
        assert config is not None
        assert config.propagator() is propagate.get_global_textmap()
        assert config.fields == {"traceparent", "tracestate"}
        assert config.environ_fields in (
            ("HTTP_TRACEPARENT", "HTTP_TRACESTATE"),
            ("HTTP_TRACESTATE", "HTTP_TRACEPARENT"),
        )
        replacement: CompositePropagator = make_propagator(["b3multi"])
        previous = propagate.get_global_textmap()
        propagate.set_global_textmap(replacement)
        try:
            assert config.propagator() is replacement
            assert "x-b3-traceid" in config.fields
            assert b"x-b3-traceid" in config.field_bytes
        finally:
            propagate.set_global_textmap(previous)
    assert _http_server.KEY == "tracekit.request"
