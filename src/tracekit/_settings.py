"""Every tracekit setting, declared once.

Each field of :class:`Settings` carries its environment variables, its value kind, its
default and a one-line description. The environment parser, the keyword validation of
:func:`tracekit.configure`, ``tracekit config`` and the table in ``docs/configuration.md``
all read these declarations, so they cannot disagree.

Precedence is keyword argument > environment variable > default. Environment variables
follow the OpenTelemetry SDK specification: an empty value counts as unset, and a bad value
is logged once at WARNING (naming the variable, the value and the fallback) and never
raises. A bad keyword raises :class:`~tracekit.ConfigError`: that is a programming error.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from tracekit._errors import ConfigError
from tracekit._logging import logger

__all__ = ["Loaded", "Settings", "declarations", "load", "render_markdown_table"]

T = TypeVar("T")

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi", "jaeger", "none")
EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")
COMPRESSIONS = ("gzip", "none")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "critical")
SEMCONV_OPT_INS = ("http", "http/dup", "database", "database/dup", "messaging", "messaging/dup")
DB_STATEMENT_MODES = ("sanitized", "raw", "off")


class PartialValue(ValueError):
    """Raised by a parser that kept the good parts of a value and skipped the rest."""

    def __init__(self, value: object, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.value = value
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- value kinds


class Kind(Generic[T]):
    """How a setting's value is read from text (environment) and checked (keyword)."""

    accepts: str = ""

    def parse(self, raw: str) -> T:
        raise NotImplementedError

    def coerce(self, value: object) -> T:
        if isinstance(value, str):
            return self.parse(value)
        raise ValueError(f"expected {self.accepts}")

    def display(self, raw: str) -> str:
        """``raw`` as it may appear in a log line."""
        return repr(raw)


class Text(Kind[str]):
    accepts = "a non-empty string"

    def parse(self, raw: str) -> str:
        text = raw.strip()
        if not text:
            raise ValueError("the value is empty")
        return text


class Boolean(Kind[bool]):
    accepts = "true or false"

    def parse(self, raw: str) -> bool:
        text = raw.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(f"expected {self.accepts}")

    def coerce(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        return super().coerce(value)


@dataclass(frozen=True)
class Number(Kind[float]):
    minimum: float = -math.inf
    maximum: float = math.inf

    @property
    def accepts(self) -> str:  # type: ignore[override]
        return f"a number from {self.minimum:g} to {self.maximum:g}"

    def parse(self, raw: str) -> float:
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected {self.accepts}") from None
        return self.coerce(number)

    def coerce(self, value: object) -> float:
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected {self.accepts}")
        if not (self.minimum <= value <= self.maximum):
            raise ValueError(f"expected {self.accepts}")
        return float(value)


@dataclass(frozen=True)
class Integer(Kind[int]):
    minimum: int = 0

    @property
    def accepts(self) -> str:  # type: ignore[override]
        return f"a whole number >= {self.minimum}"

    def parse(self, raw: str) -> int:
        try:
            number = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected {self.accepts}") from None
        return self.coerce(number)

    def coerce(self, value: object) -> int:
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise ValueError(f"expected {self.accepts}")
        return value


class Milliseconds(Kind[float]):
    """A duration: milliseconds in the environment (as the spec says), seconds as a keyword."""

    accepts = "a duration >= 0 (milliseconds in the environment, seconds as a keyword)"

    def parse(self, raw: str) -> float:
        try:
            millis = float(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number of milliseconds >= 0") from None
        if not math.isfinite(millis) or millis < 0:
            raise ValueError("expected a whole number of milliseconds >= 0")
        return millis / 1000.0

    def coerce(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number of seconds >= 0")
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected a number of seconds >= 0")
        return float(value)


@dataclass(frozen=True)
class Choice(Kind[str]):
    choices: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def accepts(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.choices)

    def parse(self, raw: str) -> str:
        text = raw.strip().lower()
        text = self.aliases.get(text, text)
        if text not in self.choices:
            raise ValueError(f"expected {self.accepts}")
        return text


@dataclass(frozen=True)
class ChoiceList(Kind[tuple[str, ...]]):
    """A comma-separated list of names; unknown names are skipped with a warning."""

    choices: tuple[str, ...] | None = None

    @property
    def accepts(self) -> str:  # type: ignore[override]
        if self.choices is None:
            return "a comma-separated list of names"
        return "a comma-separated list of " + ", ".join(self.choices)

    def parse(self, raw: str) -> tuple[str, ...]:
        return self._check([item.strip() for item in raw.split(",") if item.strip()])

    def coerce(self, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
            return self._check([item.strip() for item in value])
        raise ValueError(f"expected {self.accepts}")

    def _check(self, items: list[str]) -> tuple[str, ...]:
        kept: list[str] = []
        problems: list[str] = []
        for item in items:
            name = item.lower() if self.choices is not None else item
            if self.choices is not None and name not in self.choices:
                problems.append(f"unknown name {item!r} skipped (known: {', '.join(self.choices)})")
            elif name not in kept:
                kept.append(name)
        if problems:
            raise PartialValue(tuple(kept), problems)
        return tuple(kept)


class KeyValues(Kind[Mapping[str, str]]):
    """``key1=value1,key2=value2`` with percent-encoded values (W3C Baggage octets)."""

    accepts = "comma-separated key=value pairs, values percent-encoded (or a dict)"

    def __init__(self, *, secret: bool = False) -> None:
        #: Values may be credentials (export headers): never repeat them in a log line.
        self.secret = secret

    def parse(self, raw: str) -> Mapping[str, str]:
        pairs: dict[str, str] = {}
        problems: list[str] = []
        for position, item in enumerate(raw.split(","), start=1):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key = unquote(key.strip())
            if not sep or not key:
                shown = f"number {position}" if self.secret else repr(item.strip())
                problems.append(f"malformed pair {shown} skipped (expected key=value)")
                continue
            pairs[key] = unquote(value.strip())
        if problems:
            raise PartialValue(pairs, problems)
        return pairs

    def coerce(self, value: object) -> Mapping[str, str]:
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, Mapping) and all(isinstance(k, str) and k for k in value):
            return {str(k): str(v) for k, v in value.items()}
        raise ValueError(f"expected {self.accepts}")

    def display(self, raw: str) -> str:
        if not self.secret:
            return repr(raw)
        keys = [item.partition("=")[0].strip() for item in raw.split(",") if "=" in item]
        return "<value hidden; keys: " + (", ".join(keys) or "none") + ">"


class Endpoint(Kind[str]):
    accepts = "a URL such as http://collector:4318 (for grpc, host:port is also accepted)"

    def parse(self, raw: str) -> str:
        text = raw.strip()
        parts = urlsplit(text if "://" in text else "//" + text)
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the port is not a number from 0 to 65535") from None
        if "://" in text and parts.scheme not in ("http", "https"):
            raise ValueError("the scheme must be http or https")
        if not parts.hostname:
            raise ValueError(f"expected {self.accepts}")
        if "://" not in text and port is None:
            raise ValueError("an endpoint without a scheme needs a port (host:port)")
        return text


class ExistingFile(Kind[str]):
    accepts = "the path of a readable file"

    def parse(self, raw: str) -> str:
        path = raw.strip()
        if not os.path.isfile(path):
            raise ValueError(f"no such file: {path}")
        return path

    def coerce(self, value: object) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        return super().coerce(value)


class Exporters(ChoiceList):
    """Exporter names, or (as a keyword) SpanExporter instances mixed with names."""

    def __init__(self) -> None:
        super().__init__(EXPORTERS)

    def coerce(self, value: object) -> tuple[Any, ...]:
        from opentelemetry.sdk.trace.export import SpanExporter

        if isinstance(value, (str, SpanExporter)):
            value = [value]
        if not isinstance(value, Sequence):
            raise ValueError(
                "expected a list of exporter names (otlp, console, none) or SpanExporter objects"
            )
        instances = [item for item in value if isinstance(item, SpanExporter)]
        names = [item for item in value if not isinstance(item, SpanExporter)]
        return (*super().coerce(names), *instances)


@dataclass(frozen=True)
class Patterns(ChoiceList):
    """A comma-separated list of regular expressions; bad ones are skipped with a warning."""

    what: str = "regular expressions"

    @property
    def accepts(self) -> str:  # type: ignore[override]
        return f"a comma-separated list of {self.what}"

    def _check(self, items: list[str]) -> tuple[str, ...]:
        kept: list[str] = []
        problems: list[str] = []
        for item in items:
            try:
                re.compile(item)
            except re.error as exc:
                problems.append(f"bad regular expression {item!r} skipped ({exc})")
                continue
            if item not in kept:
                kept.append(item)
        if problems:
            raise PartialValue(tuple(kept), problems)
        return tuple(kept)


class Instrument(Kind[Any]):
    accepts = "True, False or a list of integration names"

    def coerce(self, value: object) -> bool | tuple[str, ...]:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            value = [value]
        if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"expected {self.accepts}")


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Declaration:
    """One setting: where it is read from, what it accepts, what it means."""

    name: str
    env: tuple[str, ...]
    kind: Kind[Any]
    default: Any
    doc: str
    default_doc: str | None = None

    def describe_default(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if isinstance(self.default, (tuple, Mapping)):
            return ",".join(self.default) if self.default else "(empty)"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return "(unset)" if self.default is None else str(self.default)


def _setting(
    default: T,
    env: str | tuple[str, ...],
    kind: Kind[Any],
    doc: str,
    *,
    default_doc: str | None = None,
) -> T:
    envs = (env,) if isinstance(env, str) else env
    meta = {"kind": kind, "env": envs, "doc": doc, "default_doc": default_doc}
    if isinstance(default, (dict, list)):
        factory: Callable[[], Any] = type(default)
        return field(default_factory=factory, metadata=meta)  # type: ignore[no-any-return]
    return field(default=default, metadata=meta)


def _otlp(name: str) -> tuple[str, str]:
    return (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}")


_LIMIT_DOC = "(no limit)"


@dataclass(frozen=True)
class Settings:
    """The effective configuration: one attribute per declared setting."""

    disabled: bool = _setting(
        False, "OTEL_SDK_DISABLED", Boolean(), "Turn tracing off: configure() installs and patches nothing."
    )
    service_name: str | None = _setting(
        None,
        "OTEL_SERVICE_NAME",
        Text(),
        "service.name of every span; wins over service.name in the resource attributes.",
        default_doc="unknown_service:<executable>",
    )
    service_version: str | None = _setting(
        None, (), Text(), "service.version resource attribute (e.g. a release tag or commit)."
    )
    environment: str | None = _setting(
        None, (), Text(), "deployment.environment.name resource attribute (production, staging, ...)."
    )
    resource_attributes: Mapping[str, str] = _setting(
        {}, "OTEL_RESOURCE_ATTRIBUTES", KeyValues(), "Extra resource attributes, key=value pairs."
    )
    sampler: str = _setting(
        "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER",
        Choice(SAMPLERS),
        "Sampler for new spans; parentbased_* follow the caller's decision.",
    )
    sample_ratio: float = _setting(
        1.0,
        "OTEL_TRACES_SAMPLER_ARG",
        Number(0.0, 1.0),
        "Fraction of new traces kept by the traceidratio samplers.",
    )
    keep_errors: bool = _setting(
        False,
        "TRACEKIT_KEEP_ERRORS",
        Boolean(),
        "Also export an unsampled local trace if one of its spans has ERROR status (docs/sampling.md).",
    )
    keep_slow_ms: int | None = _setting(
        None,
        "TRACEKIT_KEEP_SLOW_MS",
        Integer(0),
        "Also export an unsampled local trace whose local root lasted at least this many milliseconds.",
        default_doc="off",
    )
    keep_buffer_spans: int = _setting(
        10_000,
        "TRACEKIT_KEEP_BUFFER_SPANS",
        Integer(1),
        "Most spans of unsampled traces held until their local root ends; the oldest traces go first.",
    )
    propagators: tuple[str, ...] = _setting(
        ("tracecontext", "baggage"),
        "OTEL_PROPAGATORS",
        ChoiceList(PROPAGATORS),
        "Context propagation formats, in order; none disables propagation.",
    )
    exporters: tuple[Any, ...] = _setting(
        ("otlp",),
        "OTEL_TRACES_EXPORTER",
        Exporters(),
        "Where spans go: otlp, console, none (keyword: also SpanExporter objects; [] means none).",
    )
    endpoint: str | None = _setting(
        None,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        Endpoint(),
        "OTLP base URL; /v1/traces is appended for http/protobuf.",
        default_doc="http://localhost:4318 (grpc: http://localhost:4317)",
    )
    traces_endpoint: str | None = _setting(
        None,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        Endpoint(),
        "OTLP URL for traces, used exactly as given; wins over endpoint.",
        default_doc="endpoint + /v1/traces",
    )
    protocol: str = _setting(
        "http/protobuf", _otlp("PROTOCOL"), Choice(PROTOCOLS), "OTLP transport: http/protobuf or grpc."
    )
    headers: Mapping[str, str] = _setting(
        {},
        _otlp("HEADERS"),
        KeyValues(secret=True),
        "Headers (gRPC metadata) sent with every export request.",
    )
    timeout: float = _setting(
        10.0,
        _otlp("TIMEOUT"),
        Milliseconds(),
        "Time limit of one export request, retries included.",
        default_doc="10000 ms",
    )
    compression: str = _setting("none", _otlp("COMPRESSION"), Choice(COMPRESSIONS), "Export compression.")
    certificate: str | None = _setting(
        None,
        _otlp("CERTIFICATE"),
        ExistingFile(),
        "CA bundle (PEM) that verifies the collector's certificate.",
    )
    client_key: str | None = _setting(
        None, _otlp("CLIENT_KEY"), ExistingFile(), "Client private key (PEM) for mutual TLS."
    )
    client_certificate: str | None = _setting(
        None, _otlp("CLIENT_CERTIFICATE"), ExistingFile(), "Client certificate chain (PEM) for mutual TLS."
    )
    insecure: bool = _setting(
        False,
        _otlp("INSECURE"),
        Boolean(),
        "grpc only, for an endpoint given without a scheme: connect without TLS.",
    )
    bsp_schedule_delay: float = _setting(
        5.0,
        "OTEL_BSP_SCHEDULE_DELAY",
        Milliseconds(),
        "Delay between two batch exports.",
        default_doc="5000 ms",
    )
    bsp_export_timeout: float = _setting(
        30.0,
        "OTEL_BSP_EXPORT_TIMEOUT",
        Milliseconds(),
        "Time limit of flushing at shutdown and at exit.",
        default_doc="30000 ms",
    )
    bsp_max_queue_size: int = _setting(
        2048,
        "OTEL_BSP_MAX_QUEUE_SIZE",
        Integer(1),
        "Ended spans waiting for export; beyond it they are dropped.",
    )
    bsp_max_export_batch_size: int = _setting(
        512, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", Integer(1), "Largest number of spans in one export request."
    )
    export_max_request_size: int = _setting(
        4 * 1024 * 1024,
        "TRACEKIT_EXPORT_MAX_REQUEST_SIZE",
        Integer(65536),
        "Largest OTLP request, in bytes; a bigger batch is split, a bigger span has its longest values cut.",
        default_doc="4194304 (4 MiB)",
    )
    traced_value_length_limit: int | None = _setting(
        4096,
        "TRACEKIT_TRACED_VALUE_LENGTH_LIMIT",
        Integer(0),
        "Longest argument or result value @traced records (in characters; longer ones are cut).",
    )
    attribute_value_length_limit: int | None = _setting(
        None,
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        Integer(0),
        "Longest string attribute value kept (longer ones are cut).",
        default_doc=_LIMIT_DOC,
    )
    attribute_count_limit: int = _setting(
        128, "OTEL_ATTRIBUTE_COUNT_LIMIT", Integer(0), "Most attributes kept per span, event or link."
    )
    span_attribute_value_length_limit: int | None = _setting(
        None,
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        Integer(0),
        "Longest span attribute value kept; wins over the general limit.",
        default_doc="attribute_value_length_limit",
    )
    span_attribute_count_limit: int | None = _setting(
        None,
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        Integer(0),
        "Most attributes kept per span; wins over the general limit.",
        default_doc="attribute_count_limit",
    )
    span_event_count_limit: int = _setting(
        128, "OTEL_SPAN_EVENT_COUNT_LIMIT", Integer(0), "Most events kept per span."
    )
    span_link_count_limit: int = _setting(
        128, "OTEL_SPAN_LINK_COUNT_LIMIT", Integer(0), "Most links kept per span."
    )
    event_attribute_count_limit: int | None = _setting(
        None,
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        Integer(0),
        "Most attributes kept per span event.",
        default_doc="attribute_count_limit",
    )
    link_attribute_count_limit: int | None = _setting(
        None,
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        Integer(0),
        "Most attributes kept per span link.",
        default_doc="attribute_count_limit",
    )
    log_level: str = _setting(
        "info",
        "OTEL_LOG_LEVEL",
        Choice(LOG_LEVELS),
        "Level of tracekit's own logger, named tracekit, until shutdown() gives it its level back.",
    )
    log_correlation: bool = _setting(
        True,
        "TRACEKIT_LOG_CORRELATION",
        Boolean(),
        "Put trace_id, span_id, trace_sampled and service_name on every logging record.",
    )
    instrument: Any = _setting(
        True,
        (),
        Instrument(),
        "Integrations to patch: True (every installed one), False, or a list of names.",
    )
    disabled_instrumentations: tuple[str, ...] = _setting(
        (),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        ChoiceList(),
        "Integrations never patched, comma-separated names.",
    )
    semconv_opt_in: tuple[str, ...] = _setting(
        (),
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        ChoiceList(SEMCONV_OPT_INS),
        "http/dup, database/dup, messaging/dup also emit the older attribute names.",
    )
    excluded_urls: tuple[str, ...] = _setting(
        (),
        "OTEL_PYTHON_EXCLUDED_URLS",
        Patterns(),
        "URLs not traced (regular expressions searched in the full URL); clients still propagate context. "
        "Until it is set, servers skip only the paths /health /healthz /readyz /livez /ping /metrics.",
    )
    httpx_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_HTTPX_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for httpx requests."
    )
    requests_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_REQUESTS_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for requests requests."
    )
    urllib3_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_URLLIB3_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for urllib3 requests."
    )
    urllib_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_URLLIB_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for urllib.request."
    )
    aiohttp_client_excluded_urls: tuple[str, ...] = _setting(
        (),
        "OTEL_PYTHON_AIOHTTP_CLIENT_EXCLUDED_URLS",
        Patterns(),
        "Replaces excluded_urls for aiohttp client requests.",
    )
    asgi_excluded_urls: tuple[str, ...] = _setting(
        (),
        "OTEL_PYTHON_ASGI_EXCLUDED_URLS",
        Patterns(),
        "Replaces excluded_urls for ASGI apps served by uvicorn or hypercorn, and the ASGI middleware.",
    )
    starlette_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_STARLETTE_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for Starlette apps."
    )
    fastapi_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for FastAPI apps."
    )
    wsgi_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_WSGI_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for the WSGI middleware."
    )
    flask_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_FLASK_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for Flask apps."
    )
    django_excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_DJANGO_EXCLUDED_URLS", Patterns(), "Replaces excluded_urls for Django projects."
    )
    http_capture_headers_client_request: tuple[str, ...] = _setting(
        (),
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST",
        ChoiceList(),
        "Request headers recorded on HTTP client spans as http.request.header.<name> (case-insensitive).",
    )
    http_capture_headers_client_response: tuple[str, ...] = _setting(
        (),
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE",
        ChoiceList(),
        "Response headers recorded on HTTP client spans as http.response.header.<name> (case-insensitive).",
    )
    http_capture_headers_server_request: tuple[str, ...] = _setting(
        (),
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        ChoiceList(),
        "Request headers recorded on HTTP server spans as http.request.header.<name> (case-insensitive).",
    )
    http_capture_headers_server_response: tuple[str, ...] = _setting(
        (),
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
        ChoiceList(),
        "Response headers recorded on HTTP server spans as http.response.header.<name> (case-insensitive).",
    )
    traceresponse: bool = _setting(
        False,
        "TRACEKIT_TRACERESPONSE",
        Boolean(),
        "Send a W3C traceresponse header (trace id, server span id, flags) with every traced response.",
    )
    http_capture_headers_sanitize_fields: tuple[str, ...] = _setting(
        ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"),
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
        Patterns(what="header names or regular expressions"),
        "Captured headers whose names match (in full, case-insensitively) are recorded as [REDACTED].",
    )
    db_statement: str = _setting(
        "sanitized",
        "TRACEKIT_DB_STATEMENT",
        Choice(DB_STATEMENT_MODES),
        "db.query.text of database spans: sanitized (literals replaced by ?), raw (as sent), or off.",
    )
    db_capture_parameters: bool = _setting(
        False,
        "TRACEKIT_DB_CAPTURE_PARAMETERS",
        Boolean(),
        "Record query parameters as db.operation.parameter.<name or index> (they may hold personal data).",
    )
    sqlcommenter: bool = _setting(
        False,
        "TRACEKIT_SQLCOMMENTER",
        Boolean(),
        "Append /*traceparent='...'*/ to SQL statements so database logs can be joined to traces.",
    )


def declarations() -> Iterator[Declaration]:
    """Yield the declaration of every setting, in table order."""
    for f in dataclasses.fields(Settings):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield Declaration(
            name=f.name,
            env=f.metadata["env"],
            kind=f.metadata["kind"],
            default=default,
            doc=f.metadata["doc"],
            default_doc=f.metadata["default_doc"],
        )


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Loaded:
    """The settings in effect and, for each, where its value came from."""

    settings: Settings
    sources: Mapping[str, str]


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Loaded:
    """Resolve every setting from keyword ``overrides``, then ``environ``, then defaults.

    Raises :class:`ConfigError` for an unknown keyword or a bad keyword value; logs one
    WARNING per bad environment value and uses the fallback it names.
    """
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    decls = {decl.name: decl for decl in declarations()}
    unknown = sorted(set(overrides) - set(decls))
    if unknown:
        raise ConfigError(
            f"configure() got unknown argument(s) {', '.join(unknown)}; known arguments: {', '.join(decls)}"
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, decl in decls.items():
        if name in overrides:
            values[name] = _from_keyword(decl, overrides[name])
            sources[name] = "keyword"
        else:
            values[name], sources[name] = _from_environment(decl, decl.env, environ)
    return Loaded(Settings(**values), sources)


def _from_keyword(decl: Declaration, value: object) -> Any:
    if value is None and decl.default is None:
        return None
    try:
        return decl.kind.coerce(value)
    except PartialValue as exc:
        problems = "; ".join(exc.problems)
        raise ConfigError(f"configure({decl.name}={value!r}): {problems}") from None
    except ValueError as exc:
        raise ConfigError(f"configure({decl.name}={value!r}): {exc}") from None


def _from_environment(decl: Declaration, envs: Sequence[str], environ: Mapping[str, str]) -> tuple[Any, str]:
    """Read the first usable variable of ``envs``; warn once about each bad one.

    A list or key=value value with some bad items keeps the good ones; when nothing good is
    left the variable counts as not set (the next variable, or the default, is used).
    """
    for position, var in enumerate(envs):
        raw = environ.get(var, "")
        if not raw.strip():
            continue
        try:
            return decl.kind.parse(raw), var
        except PartialValue as exc:
            problem = "; ".join(exc.problems)
            if exc.value:
                logger.warning(
                    "tracekit: %s=%s: %s; using %s",
                    var,
                    decl.kind.display(raw),
                    problem,
                    _describe_kept(exc.value),
                )
                return exc.value, var
        except ValueError as exc:
            problem = str(exc)
        value, source = _from_environment(decl, envs[position + 1 :], environ)
        fallback = f"{source}" if source != "default" else f"the default ({decl.describe_default()})"
        logger.warning(
            "tracekit: %s=%s is not valid (%s); using %s instead",
            var,
            decl.kind.display(raw),
            problem,
            fallback,
        )
        return value, source
    return decl.default, "default"


def _describe_kept(value: object) -> str:
    """What is left of a partly valid value, for a warning (header values are not repeated)."""
    if isinstance(value, Mapping):
        return "the other pairs (keys: " + ", ".join(value) + ")"
    if isinstance(value, tuple):
        return ",".join(value)
    return repr(value)


# --------------------------------------------------------------------------- documentation


def render_markdown_table() -> str:
    """The configuration table of ``docs/configuration.md``, generated from the declarations."""
    lines = [
        "| Keyword | Environment variable | Accepts | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for decl in declarations():
        env = "<br>".join(f"`{var}`" for var in decl.env) or "(keyword only)"
        accepts = decl.kind.accepts.replace("|", "\\|")
        lines.append(f"| `{decl.name}` | {env} | {accepts} | `{decl.describe_default()}` | {decl.doc} |")
    return "\n".join(lines) + "\n"


TABLE_START = "<!-- settings table: generated from src/tracekit/_settings.py -->"
TABLE_END = "<!-- end of settings table -->"


def update_docs(path: str) -> bool:
    """Rewrite the table between the markers in ``path``; ``True`` if the file changed."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    updated = f"{head}{TABLE_START}\n{render_markdown_table()}{TABLE_END}{tail}"
    if updated != text:
        with open(path, "w", encoding="utf-8") as file:
            file.write(updated)
    return updated != text
