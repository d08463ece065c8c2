"""configure(): every setting from the environment (valid and invalid), keywords, precedence, resource.

Each environment variable has a case with a valid value (the effective value, and its effect on
the SDK objects tracekit installed) and a case with an invalid value (exactly one WARNING on the
``tracekit`` logger naming the variable, the value and the fallback; the fallback in effect).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import Link, SpanContext, TraceFlags

import tracekit
from tracekit import _state
from tracekit._logging import logger as tracekit_logger
from tracekit._settings import Settings, declarations, load
from tracekit.exporters.console import ConsoleSpanExporter
from tracekit.testing import capture_spans

EXECUTABLE = os.path.basename(sys.executable)

#: The environment variables the foundation issue lists, spelled out (not derived from the code).
ISSUE_VARIABLES = {
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_TRACES_EXPORTER",
    *(
        f"OTEL_EXPORTER_OTLP_{signal}{name}"
        for signal in ("", "TRACES_")
        for name in (
            "ENDPOINT",
            "PROTOCOL",
            "HEADERS",
            "TIMEOUT",
            "COMPRESSION",
            "CERTIFICATE",
            "CLIENT_KEY",
            "CLIENT_CERTIFICATE",
            "INSECURE",
        )
    ),
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LOG_LEVEL",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
}

#: Filled in by the tables below: the variables that have a valid / an invalid case.
VALID_CASES: set[str] = set()
INVALID_CASES: set[str] = set()


def _covers(cases: set[str], *names: str) -> None:
    cases.update(names)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _tracekit_logger_level(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """configure() sets the tracekit logger's level (OTEL_LOG_LEVEL); put it back after each test."""
    caplog.set_level(logging.WARNING, logger="tracekit")
    # one line per attribute dropped by a limit: thousands in the limit tests
    attributes_logger = logging.getLogger("opentelemetry.attributes")
    level = attributes_logger.level
    attributes_logger.setLevel(logging.ERROR)
    yield
    attributes_logger.setLevel(level)


def tracekit_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("tracekit") and record.levelno >= logging.WARNING
    ]


def one_warning(caplog: pytest.LogCaptureFixture) -> str:
    messages = tracekit_warnings(caplog)
    assert len(messages) == 1, messages
    return messages[0]


def configure_with(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: Any
) -> tracekit.Tracing:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tracekit.configure(**overrides)


def provider_of(tracing: tracekit.Tracing) -> TracerProvider:
    assert tracing.provider is not None
    return tracing.provider


def processors_of(tracing: tracekit.Tracing) -> list[Any]:
    return list(provider_of(tracing)._active_span_processor._span_processors)


def exporters_of(tracing: tracekit.Tracing) -> list[Any]:
    """The exporters in use; tracekit's OTLP exporter stands for its transport, made now."""
    from tracekit.exporters._otlp import OTLPSpanExporter

    exporters = [processor.exporter for processor in processors_of(tracing)]
    return [item._ready()[1] if isinstance(item, OTLPSpanExporter) else item for item in exporters]


def only_exporter(tracing: tracekit.Tracing) -> Any:
    exporters = exporters_of(tracing)
    assert len(exporters) == 1, exporters
    return exporters[0]


def http_exporter_view(transport: Any) -> dict[str, Any]:
    """What the OTLP/HTTP transport will actually do, read from its objects."""
    from tracekit.exporters._transport import HTTPTransport

    assert type(transport) is HTTPTransport
    certificate, client_certificate, client_key = transport.tls_files
    return {
        "endpoint": transport.endpoint,
        # the transport's own Content-Type and User-Agent are left out
        "headers": {k: v for k, v in transport._headers.items() if k not in ("Content-Type", "User-Agent")},
        "timeout": transport.timeout,
        "compression": "gzip" if transport.gzip else "none",
        "verify": certificate or True,
        "cert": client_certificate if client_key is None else (client_certificate, client_key),
    }


HTTP_DEFAULTS = {
    "endpoint": "http://localhost:4318/v1/traces",
    "headers": {},
    "timeout": 10.0,
    "compression": "none",
    "verify": True,
    "cert": None,
}


def grpc_exporter(tracing: tracekit.Tracing) -> Any:
    from tracekit.exporters._transport import GRPCTransport

    transport = only_exporter(tracing)
    assert type(transport) is GRPCTransport
    return transport


def global_propagators() -> list[type[TextMapPropagator]]:
    from opentelemetry import propagate

    # B3 and Jaeger come wrapped in tracekit's header checks; name the official class inside
    propagators = propagate.get_global_textmap()._propagators  # type: ignore[attr-defined]
    return [type(getattr(p, "inner", p)) for p in propagators]


def resource_of(tracing: tracekit.Tracing) -> dict[str, Any]:
    return dict(provider_of(tracing).resource.attributes)


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Files at the paths the certificate variables name (the exporter only stores the paths)."""
    paths = {}
    for name in ("ca.pem", "client.key", "client.pem"):
        path = tmp_path / name
        path.write_text("-----BEGIN PLACEHOLDER-----\n-----END PLACEHOLDER-----\n")
        paths[name] = str(path)
    return paths


# --------------------------------------------------------------------------- the list itself


def test_every_variable_of_the_issue_is_declared() -> None:
    declared = {var for decl in declarations() for var in decl.env}
    assert ISSUE_VARIABLES - declared == set()


def test_empty_or_blank_value_counts_as_unset_for_every_variable(caplog: pytest.LogCaptureFixture) -> None:
    baseline = load(environ={})
    for decl in declarations():
        for var in decl.env:
            for blank in ("", "   "):
                loaded = load(environ={var: blank})
                assert loaded.settings == baseline.settings, var
                assert loaded.sources == baseline.sources, var
    assert tracekit_warnings(caplog) == []


# --------------------------------------------------------------------------- OTEL_SDK_DISABLED

_covers(VALID_CASES, "OTEL_SDK_DISABLED")
_covers(INVALID_CASES, "OTEL_SDK_DISABLED")


@pytest.mark.parametrize("value", ["true", "TRUE", " true "])
def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from opentelemetry import propagate

    provider_before = trace.get_tracer_provider()
    textmap_before = propagate.get_global_textmap()
    tracing = configure_with(monkeypatch, {"OTEL_SDK_DISABLED": value})
    assert tracing.settings.disabled is True
    assert tracing.sources["disabled"] == "OTEL_SDK_DISABLED"
    assert tracing.enabled is False
    assert tracing.provider is None
    assert trace.get_tracer_provider() is provider_before
    assert propagate.get_global_textmap() is textmap_before
    assert isinstance(_state.tracer, trace.NoOpTracer)
    assert tracing.force_flush(timeout=1) is False
    tracing.shutdown()
    assert trace.get_tracer_provider() is provider_before


def test_sdk_disabled_false_installs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "none"})
    assert tracing.settings.disabled is False
    assert tracing.enabled is True
    assert trace.get_tracer_provider() is tracing.provider
    assert tracekit_warnings(caplog) == []


def test_sdk_disabled_invalid_warns_and_stays_enabled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_SDK_DISABLED": "yes", "OTEL_TRACES_EXPORTER": "none"})
    assert one_warning(caplog) == (
        "tracekit: OTEL_SDK_DISABLED='yes' is not valid (expected true or false); "
        "using the default (false) instead"
    )
    assert tracing.settings.disabled is False
    assert tracing.enabled is True
    assert trace.get_tracer_provider() is tracing.provider


def test_disabled_keyword_false_wins_over_environment_and_spans_are_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with capture_spans(disabled=False) as recorder:
        with trace.get_tracer("test").start_as_current_span("kept") as span:
            assert span.is_recording()
        assert [s.name for s in recorder.spans] == ["kept"]


# --------------------------------------------------------------------------- service name and resource

_covers(VALID_CASES, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")
_covers(INVALID_CASES, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")


def test_service_name_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing = configure_with(
        monkeypatch, {"OTEL_SERVICE_NAME": "checkout-api", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert tracing.settings.service_name == "checkout-api"
    assert resource_of(tracing)["service.name"] == "checkout-api"


def test_service_name_has_no_invalid_value_a_blank_one_is_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Any non-blank text is a valid service name; blank is "unset" per the specification.
    tracing = configure_with(monkeypatch, {"OTEL_SERVICE_NAME": " \t ", "OTEL_TRACES_EXPORTER": "none"})
    assert tracing.settings.service_name is None
    assert resource_of(tracing)["service.name"] == f"unknown_service:{EXECUTABLE}"
    assert tracekit_warnings(caplog) == []


def test_resource_attributes_are_percent_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing = configure_with(
        monkeypatch,
        {
            "OTEL_RESOURCE_ATTRIBUTES": "team=payments, region=eu%2Cwest ,note=a%20b%3Dc,k8s.pod.name=web-1",
            "OTEL_TRACES_EXPORTER": "none",
        },
    )
    assert tracing.settings.resource_attributes == {
        "team": "payments",
        "region": "eu,west",
        "note": "a b=c",
        "k8s.pod.name": "web-1",
    }
    resource = resource_of(tracing)
    assert resource["team"] == "payments"
    assert resource["region"] == "eu,west"
    assert resource["note"] == "a b=c"
    assert resource["k8s.pod.name"] == "web-1"


def test_resource_attributes_malformed_pairs_are_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    raw = "team=payments,oops,=nokey,region=eu"
    tracing = configure_with(monkeypatch, {"OTEL_RESOURCE_ATTRIBUTES": raw, "OTEL_TRACES_EXPORTER": "none"})
    assert one_warning(caplog) == (
        f"tracekit: OTEL_RESOURCE_ATTRIBUTES={raw!r}: malformed pair 'oops' skipped (expected key=value); "
        "malformed pair '=nokey' skipped (expected key=value); using the other pairs (keys: team, region)"
    )
    assert tracing.settings.resource_attributes == {"team": "payments", "region": "eu"}
    resource = resource_of(tracing)
    assert (resource["team"], resource["region"]) == ("payments", "eu")
    assert "oops" not in resource
    assert "" not in resource


def test_resource_attributes_wholly_malformed_falls_back_to_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(
        monkeypatch, {"OTEL_RESOURCE_ATTRIBUTES": "oops", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert one_warning(caplog) == (
        "tracekit: OTEL_RESOURCE_ATTRIBUTES='oops' is not valid (malformed pair 'oops' skipped "
        "(expected key=value)); using the default ((empty)) instead"
    )
    assert tracing.settings.resource_attributes == {}
    assert "oops" not in resource_of(tracing)


@pytest.mark.parametrize(
    ("env", "keywords", "expected"),
    [
        pytest.param(
            {"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
            {},
            "from-env",
            id="OTEL_SERVICE_NAME-beats-resource-attributes",
        ),
        pytest.param(
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
            {},
            "from-attrs",
            id="resource-attributes",
        ),
        pytest.param({}, {}, f"unknown_service:{EXECUTABLE}", id="neither"),
        pytest.param(
            {"OTEL_SERVICE_NAME": "from-env"}, {"service_name": "from-keyword"}, "from-keyword", id="keyword"
        ),
        pytest.param(
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
            {"resource_attributes": {"service.name": "from-keyword-attrs"}},
            "from-keyword-attrs",
            id="keyword-resource-attributes",
        ),
    ],
)
def test_service_name_precedence(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], keywords: dict[str, Any], expected: str
) -> None:
    tracing = configure_with(monkeypatch, env, exporters=[], **keywords)
    assert resource_of(tracing)["service.name"] == expected


def test_resource_of_an_exported_span() -> None:
    with capture_spans(service_name="checkout", service_version="1.2.3", environment="staging") as recorder:
        with trace.get_tracer("test").start_as_current_span("work"):
            pass
        (span,) = recorder.spans
    resource = dict(span.resource.attributes)
    instance_id = resource.pop("service.instance.id")
    assert len(str(instance_id)) == 36
    assert resource == {
        "service.name": "checkout",
        "service.version": "1.2.3",
        "deployment.environment.name": "staging",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "telemetry.distro.name": "tracekit",
        "telemetry.distro.version": tracekit.__version__,
        "process.pid": os.getpid(),
        "host.name": socket.gethostname(),
    }


def test_service_version_and_environment_are_absent_unless_given() -> None:
    tracing = tracekit.configure(exporters=[])
    resource = resource_of(tracing)
    assert "service.version" not in resource
    assert "deployment.environment.name" not in resource


# --------------------------------------------------------------------------- sampler

_covers(VALID_CASES, "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
_covers(INVALID_CASES, "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")

_PARENT_RULES = (
    "remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,"
    "localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"
)


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("always_on", "AlwaysOnSampler"),
        ("always_off", "AlwaysOffSampler"),
        ("traceidratio", "ProbabilitySampler{1.0}"),
        ("parentbased_always_on", "ParentBased{root:AlwaysOnSampler," + _PARENT_RULES),
        ("parentbased_always_off", "ParentBased{root:AlwaysOffSampler," + _PARENT_RULES),
        ("PARENTBASED_TRACEIDRATIO", "ParentBased{root:ProbabilitySampler{1.0}," + _PARENT_RULES),
    ],
)
def test_traces_sampler(monkeypatch: pytest.MonkeyPatch, value: str, description: str) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_SAMPLER": value}, exporters=[])
    assert tracing.settings.sampler == value.lower()
    assert provider_of(tracing).sampler.get_description() == description


def test_traces_sampler_invalid(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_SAMPLER": "sometimes"}, exporters=[])
    assert one_warning(caplog) == (
        "tracekit: OTEL_TRACES_SAMPLER='sometimes' is not valid (expected one of always_on, always_off, "
        "traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio); "
        "using the default (parentbased_traceidratio) instead"
    )
    assert tracing.settings.sampler == "parentbased_traceidratio"
    assert provider_of(tracing).sampler.get_description() == (
        "ParentBased{root:ProbabilitySampler{1.0}," + _PARENT_RULES
    )


@pytest.mark.parametrize(("value", "ratio"), [("0.25", 0.25), ("0", 0.0), ("1", 1.0), (" 1e-1 ", 0.1)])
def test_traces_sampler_arg(monkeypatch: pytest.MonkeyPatch, value: str, ratio: float) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_SAMPLER_ARG": value}, exporters=[])
    assert tracing.settings.sample_ratio == ratio
    assert provider_of(tracing).sampler.get_description() == (
        f"ParentBased{{root:ProbabilitySampler{{{ratio}}}," + _PARENT_RULES
    )


@pytest.mark.parametrize("value", ["1.5", "-0.1", "half", "nan", "inf"])
def test_traces_sampler_arg_invalid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    tracing = configure_with(
        monkeypatch, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": value}, exporters=[]
    )
    assert one_warning(caplog) == (
        f"tracekit: OTEL_TRACES_SAMPLER_ARG={value!r} is not valid (expected a number from 0 to 1); "
        "using the default (1.0) instead"
    )
    assert tracing.settings.sample_ratio == 1.0
    assert provider_of(tracing).sampler.get_description() == "ProbabilitySampler{1.0}"


# --------------------------------------------------------------------------- propagators

_covers(VALID_CASES, "OTEL_PROPAGATORS")
_covers(INVALID_CASES, "OTEL_PROPAGATORS")


def _propagator_types() -> dict[str, type[TextMapPropagator]]:
    from opentelemetry.propagators.jaeger import JaegerPropagator

    from tracekit._b3 import B3MultiFormat, B3SingleFormat
    from tracekit._baggage import W3CBaggagePropagator
    from tracekit._tracecontext import TraceContextPropagator

    return {
        "tracecontext": TraceContextPropagator,
        "baggage": W3CBaggagePropagator,
        "b3": B3SingleFormat,
        "b3multi": B3MultiFormat,
        "jaeger": JaegerPropagator,
    }


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("jaeger,b3multi , tracecontext", ("jaeger", "b3multi", "tracecontext")),
        ("b3,baggage", ("b3", "baggage")),
        ("none", ("none",)),
    ],
)
def test_propagators(monkeypatch: pytest.MonkeyPatch, value: str, names: tuple[str, ...]) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_PROPAGATORS": value}, exporters=[])
    assert tracing.settings.propagators == names
    types = _propagator_types()
    assert global_propagators() == [types[name] for name in names if name != "none"]


def test_propagators_default() -> None:
    tracekit.configure(exporters=[])
    types = _propagator_types()
    assert global_propagators() == [types["tracecontext"], types["baggage"]]


def test_propagators_unknown_name_is_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_PROPAGATORS": "b3,xray"}, exporters=[])
    assert one_warning(caplog) == (
        "tracekit: OTEL_PROPAGATORS='b3,xray': unknown name 'xray' skipped "
        "(known: tracecontext, baggage, b3, b3multi, jaeger, none); using b3"
    )
    assert tracing.settings.propagators == ("b3",)
    assert global_propagators() == [_propagator_types()["b3"]]


def test_propagators_all_unknown_falls_back_to_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_PROPAGATORS": "xray,ottrace"}, exporters=[])
    message = one_warning(caplog)
    assert message.startswith("tracekit: OTEL_PROPAGATORS='xray,ottrace' is not valid (unknown name 'xray'")
    assert "unknown name 'ottrace'" in message
    assert message.endswith("using the default (tracecontext,baggage) instead")
    assert tracing.settings.propagators == ("tracecontext", "baggage")
    types = _propagator_types()
    assert global_propagators() == [types["tracecontext"], types["baggage"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bogus", "['TraceContextPropagator', 'W3CBaggagePropagator']"),
        ("b3multi,bogus", "['B3MultiFormat']"),
    ],
)
def test_bad_propagators_survive_a_later_import_of_opentelemetry_propagate(value: str, expected: str) -> None:
    # opentelemetry.propagate reads OTEL_PROPAGATORS when first imported and raises on an
    # unknown name; it must be imported fresh, hence a subprocess.
    script = textwrap.dedent(
        """
        import sys
        import tracekit
        assert "opentelemetry.propagate" not in sys.modules
        tracekit.configure(exporters=[])
        import opentelemetry.propagate
        from opentelemetry.propagate import get_global_textmap
        print([type(getattr(p, "inner", p)).__name__ for p in get_global_textmap()._propagators])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_PROPAGATORS"] = value
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    assert f"OTEL_PROPAGATORS={value!r}" in result.stderr
    assert os.environ.get("OTEL_PROPAGATORS") is None


# --------------------------------------------------------------------------- exporters

_covers(VALID_CASES, "OTEL_TRACES_EXPORTER")
_covers(INVALID_CASES, "OTEL_TRACES_EXPORTER")


def _otlp_http_type() -> type[Any]:
    from tracekit.exporters._transport import HTTPTransport

    return HTTPTransport


@pytest.mark.parametrize(
    ("value", "names", "types"),
    [
        ("console", ("console",), [ConsoleSpanExporter]),
        ("otlp, console", ("otlp", "console"), ["otlp", ConsoleSpanExporter]),
        ("none", ("none",), []),
        ("otlp", ("otlp",), ["otlp"]),
    ],
)
def test_traces_exporter(
    monkeypatch: pytest.MonkeyPatch, value: str, names: tuple[str, ...], types: list[Any]
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_EXPORTER": value})
    assert tracing.settings.exporters == names
    expected = [_otlp_http_type() if t == "otlp" else t for t in types]
    assert [type(e) for e in exporters_of(tracing)] == expected


def test_traces_exporter_unknown_name_is_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_EXPORTER": "zipkin,console"})
    assert one_warning(caplog) == (
        "tracekit: OTEL_TRACES_EXPORTER='zipkin,console': unknown name 'zipkin' skipped "
        "(known: otlp, console, none); using console"
    )
    assert [type(e) for e in exporters_of(tracing)] == [ConsoleSpanExporter]


def test_traces_exporter_invalid_falls_back_to_otlp(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert one_warning(caplog) == (
        "tracekit: OTEL_TRACES_EXPORTER='zipkin' is not valid (unknown name 'zipkin' skipped "
        "(known: otlp, console, none)); using the default (otlp) instead"
    )
    assert tracing.settings.exporters == ("otlp",)
    assert [type(e) for e in exporters_of(tracing)] == [_otlp_http_type()]


# --------------------------------------------------------------------------- OTLP exporter settings

OTLP_PREFIXES = ("OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_")
OTLP_NAMES = (
    "ENDPOINT",
    "PROTOCOL",
    "HEADERS",
    "TIMEOUT",
    "COMPRESSION",
    "CERTIFICATE",
    "CLIENT_KEY",
    "CLIENT_CERTIFICATE",
    "INSECURE",
)
_covers(VALID_CASES, *(prefix + name for prefix in OTLP_PREFIXES for name in OTLP_NAMES))
_covers(INVALID_CASES, *(prefix + name for prefix in OTLP_PREFIXES for name in OTLP_NAMES))


def _otlp_params() -> list[Any]:
    return [pytest.param(prefix, name, id=prefix + name) for name in OTLP_NAMES for prefix in OTLP_PREFIXES]


@pytest.mark.parametrize(("prefix", "name"), _otlp_params())
def test_otlp_variable_valid(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    pem_files: dict[str, str],
    prefix: str,
    name: str,
) -> None:
    var = prefix + name
    traces = prefix.endswith("TRACES_")
    if name == "ENDPOINT":
        url = "http://collector.example:4318/custom/traces" if traces else "http://collector.example:4318/"
        tracing = configure_with(monkeypatch, {var: url})
        assert getattr(tracing.settings, "traces_endpoint" if traces else "endpoint") == url
        expected = url if traces else "http://collector.example:4318/v1/traces"
        assert http_exporter_view(only_exporter(tracing)) == {**HTTP_DEFAULTS, "endpoint": expected}
    elif name == "PROTOCOL":
        tracing = configure_with(monkeypatch, {var: "grpc"})
        assert tracing.settings.protocol == "grpc"
        exporter = grpc_exporter(tracing)
        assert exporter.target == "localhost:4317"
        assert exporter.insecure is True
    elif name == "HEADERS":
        tracing = configure_with(monkeypatch, {var: "api-key=s3cr%3Dt, x-team = pay%20ments"})
        assert tracing.settings.headers == {"api-key": "s3cr=t", "x-team": "pay ments"}
        assert http_exporter_view(only_exporter(tracing)) == {
            **HTTP_DEFAULTS,
            "headers": {"api-key": "s3cr=t", "x-team": "pay ments"},
        }
    elif name == "TIMEOUT":
        tracing = configure_with(monkeypatch, {var: "2500"})
        assert tracing.settings.timeout == 2.5
        assert http_exporter_view(only_exporter(tracing)) == {**HTTP_DEFAULTS, "timeout": 2.5}
    elif name == "COMPRESSION":
        tracing = configure_with(monkeypatch, {var: "GZIP"})
        assert tracing.settings.compression == "gzip"
        assert http_exporter_view(only_exporter(tracing)) == {
            **HTTP_DEFAULTS,
            "compression": "gzip",
            "headers": {"Content-Encoding": "gzip"},
        }
    elif name == "CERTIFICATE":
        tracing = configure_with(monkeypatch, {var: pem_files["ca.pem"]})
        assert tracing.settings.certificate == pem_files["ca.pem"]
        assert http_exporter_view(only_exporter(tracing)) == {**HTTP_DEFAULTS, "verify": pem_files["ca.pem"]}
    elif name == "CLIENT_KEY":
        tracing = configure_with(
            monkeypatch,
            {var: pem_files["client.key"], prefix + "CLIENT_CERTIFICATE": pem_files["client.pem"]},
        )
        assert tracing.settings.client_key == pem_files["client.key"]
        assert http_exporter_view(only_exporter(tracing)) == {
            **HTTP_DEFAULTS,
            "cert": (pem_files["client.pem"], pem_files["client.key"]),
        }
    elif name == "CLIENT_CERTIFICATE":
        tracing = configure_with(monkeypatch, {var: pem_files["client.pem"]})
        assert tracing.settings.client_certificate == pem_files["client.pem"]
        assert http_exporter_view(only_exporter(tracing)) == {
            **HTTP_DEFAULTS,
            "cert": pem_files["client.pem"],
        }
    else:
        assert name == "INSECURE"
        tracing = configure_with(
            monkeypatch, {var: "true"}, protocol="grpc", endpoint="collector.example:4317"
        )
        assert tracing.settings.insecure is True
        exporter = grpc_exporter(tracing)
        assert (exporter.target, exporter.insecure) == ("collector.example:4317", True)
    assert tracing.sources[_setting_of(var)] == var
    assert tracekit_warnings(caplog) == []


def _setting_of(var: str) -> str:
    (name,) = [decl.name for decl in declarations() if var in decl.env]
    return name


#: name -> (invalid value, the fallback as the warning describes it, the fallback value)
OTLP_INVALID: dict[str, tuple[str, str, Any]] = {
    "ENDPOINT": ("ftp://collector.example", "", None),
    "PROTOCOL": ("http/json", "http/protobuf", "http/protobuf"),
    "HEADERS": ("api-key", "(empty)", {}),
    "TIMEOUT": ("ten seconds", "10000 ms", 10.0),
    "COMPRESSION": ("brotli", "none", "none"),
    "CERTIFICATE": ("/nonexistent/ca.pem", "(unset)", None),
    "CLIENT_KEY": ("/nonexistent/client.key", "(unset)", None),
    "CLIENT_CERTIFICATE": ("/nonexistent/client.pem", "(unset)", None),
    "INSECURE": ("yes", "false", False),
}


@pytest.mark.parametrize(("prefix", "name"), _otlp_params())
def test_otlp_variable_invalid(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    pem_files: dict[str, str],
    prefix: str,
    name: str,
) -> None:
    var = prefix + name
    value, fallback_doc, fallback = OTLP_INVALID[name]
    traces = prefix.endswith("TRACES_")
    setting = _setting_of(var)
    if name == "ENDPOINT":
        fallback_doc = (
            "endpoint + /v1/traces" if traces else "http://localhost:4318 (grpc: http://localhost:4317)"
        )
    extra: dict[str, Any] = {}
    if name == "INSECURE":
        extra = {"protocol": "grpc", "endpoint": "collector.example:4317"}
    if name == "CLIENT_KEY":
        # a good client certificate next to the bad key: the key must not reach the exporter
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pem_files["client.pem"])
    tracing = configure_with(monkeypatch, {var: value}, **extra)

    message = one_warning(caplog)
    shown = "<value hidden; keys: none>" if name == "HEADERS" else repr(value)
    assert message.startswith(f"tracekit: {var}={shown} is not valid (")
    assert message.endswith(f"; using the default ({fallback_doc}) instead")
    assert getattr(tracing.settings, setting) == fallback
    assert tracing.sources[setting] == "default"

    if name == "INSECURE":
        exporter = grpc_exporter(tracing)
        assert (exporter.target, exporter.insecure) == ("collector.example:4317", False)
    elif name == "CLIENT_KEY":
        assert http_exporter_view(only_exporter(tracing)) == {
            **HTTP_DEFAULTS,
            "cert": pem_files["client.pem"],
        }
    else:
        assert http_exporter_view(only_exporter(tracing)) == HTTP_DEFAULTS


@pytest.mark.parametrize(
    ("name", "generic", "specific", "expected"),
    [
        ("PROTOCOL", "grpc", "http/protobuf", "http/protobuf"),
        ("HEADERS", "a=generic,b=generic", "a=specific", {"a": "specific"}),
        ("TIMEOUT", "1000", "3000", 3.0),
        ("COMPRESSION", "none", "gzip", "gzip"),
        ("CERTIFICATE", "ca.pem", "client.pem", "client.pem"),
        ("CLIENT_KEY", "ca.pem", "client.key", "client.key"),
        ("CLIENT_CERTIFICATE", "ca.pem", "client.pem", "client.pem"),
        ("INSECURE", "false", "true", True),
    ],
)
def test_traces_specific_variable_wins_over_generic(
    monkeypatch: pytest.MonkeyPatch,
    pem_files: dict[str, str],
    name: str,
    generic: str,
    specific: str,
    expected: Any,
) -> None:
    def resolve(value: Any) -> Any:
        return pem_files.get(value, value) if isinstance(value, str) else value

    tracing = configure_with(
        monkeypatch,
        {
            f"OTEL_EXPORTER_OTLP_{name}": resolve(generic),
            f"OTEL_EXPORTER_OTLP_TRACES_{name}": resolve(specific),
        },
        exporters=[],
    )
    setting = _setting_of(f"OTEL_EXPORTER_OTLP_{name}")
    assert getattr(tracing.settings, setting) == resolve(expected)
    assert tracing.sources[setting] == f"OTEL_EXPORTER_OTLP_TRACES_{name}"


def test_traces_endpoint_is_used_as_given_and_wins_over_the_base_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing = configure_with(
        monkeypatch,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base.example:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example/otlp",
        },
    )
    assert http_exporter_view(only_exporter(tracing))["endpoint"] == "https://traces.example/otlp"


@pytest.mark.parametrize(
    ("name", "bad", "generic", "expected"),
    [
        ("PROTOCOL", "http/json", "grpc", "grpc"),
        ("HEADERS", "no-equals-sign", "a=generic", {"a": "generic"}),
        ("TIMEOUT", "-1", "4000", 4.0),
        ("COMPRESSION", "zstd", "gzip", "gzip"),
        ("CERTIFICATE", "/nonexistent/ca.pem", "ca.pem", "ca.pem"),
        ("CLIENT_KEY", "/nonexistent/key.pem", "client.key", "client.key"),
        ("CLIENT_CERTIFICATE", "/nonexistent/cert.pem", "client.pem", "client.pem"),
        ("INSECURE", "si", "true", True),
    ],
)
def test_invalid_traces_specific_variable_falls_back_to_generic(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    pem_files: dict[str, str],
    name: str,
    bad: str,
    generic: str,
    expected: Any,
) -> None:
    generic = pem_files.get(generic, generic)
    expected = pem_files.get(expected, expected) if isinstance(expected, str) else expected
    specific_var, generic_var = f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"
    tracing = configure_with(monkeypatch, {generic_var: generic, specific_var: bad}, exporters=[])
    message = one_warning(caplog)
    shown = "<value hidden; keys: none>" if name == "HEADERS" else repr(bad)
    assert message.startswith(f"tracekit: {specific_var}={shown} is not valid (")
    assert message.endswith(f"; using {generic_var} instead")
    setting = _setting_of(generic_var)
    assert getattr(tracing.settings, setting) == expected
    assert tracing.sources[setting] == generic_var


def test_invalid_traces_endpoint_falls_back_to_the_base_endpoint(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = configure_with(
        monkeypatch,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base.example:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector.example",
        },
    )
    assert one_warning(caplog) == (
        "tracekit: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='collector.example' is not valid "
        "(an endpoint without a scheme needs a port (host:port)); "
        "using the default (endpoint + /v1/traces) instead"
    )
    assert http_exporter_view(only_exporter(tracing))["endpoint"] == "http://base.example:4318/v1/traces"


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, "https://collector.example:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_INSECURE": "true"}, "http://collector.example:4318/v1/traces"),
    ],
)
def test_http_endpoint_without_scheme_uses_tls_unless_insecure(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector.example:4318", **env})
    assert http_exporter_view(only_exporter(tracing))["endpoint"] == endpoint


def test_grpc_exporter_gets_the_explicit_values_even_when_the_environment_disagrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gRPC exporter reads OTEL_EXPORTER_OTLP_TRACES_TIMEOUT itself and raises on text;
    # keywords must win and a bad variable must not stop configure().
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "ten seconds")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "from-env=1")
    tracing = tracekit.configure(protocol="grpc", headers={}, endpoint="http://collector.example:4317")
    exporter = grpc_exporter(tracing)
    assert exporter._metadata == ()
    assert tracing.settings.timeout == 10.0
    assert os.environ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] == "ten seconds"


# --------------------------------------------------------------------------- batch span processor

_BSP = {
    "OTEL_BSP_SCHEDULE_DELAY": ("bsp_schedule_delay", "_schedule_delay", "250", 0.25, "-5", "5000 ms", 5.0),
    "OTEL_BSP_EXPORT_TIMEOUT": (
        "bsp_export_timeout",
        "_export_timeout",
        "1500",
        1.5,
        "soon",
        "30000 ms",
        30.0,
    ),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("bsp_max_queue_size", "_max_queue_size", "64", 64, "0", "2048", 2048),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": (
        "bsp_max_export_batch_size",
        "_max_export_batch_size",
        "16",
        16,
        "1.5",
        "512",
        512,
    ),
}
_covers(VALID_CASES, *_BSP)
_covers(INVALID_CASES, *_BSP)


@pytest.mark.parametrize("var", list(_BSP))
def test_batch_processor_variable_valid(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    setting, attribute, value, expected, *_ = _BSP[var]
    tracing = configure_with(monkeypatch, {var: value}, exporters=[InMemorySpanExporter()])
    assert getattr(tracing.settings, setting) == expected
    (processor,) = processors_of(tracing)
    assert getattr(processor, attribute) == expected


@pytest.mark.parametrize("var", list(_BSP))
def test_batch_processor_variable_invalid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, var: str
) -> None:
    setting, attribute, _, _, bad, fallback_doc, fallback = _BSP[var]
    tracing = configure_with(monkeypatch, {var: bad}, exporters=[InMemorySpanExporter()])
    message = one_warning(caplog)
    assert message.startswith(f"tracekit: {var}={bad!r} is not valid (")
    assert message.endswith(f"; using the default ({fallback_doc}) instead")
    assert getattr(tracing.settings, setting) == fallback
    (processor,) = processors_of(tracing)
    assert getattr(processor, attribute) == fallback


# --------------------------------------------------------------------------- span limits

_LONG = "x" * 1000
_MANY = 130
_LAST = f"a{_MANY - 1:03}"  # a full attribute dict drops its oldest entries, so the last one stays

#: What a span with 130 attributes, events and links (each with 130 attributes, values of
#: 1000 characters) keeps under the default limits.
DEFAULT_SHAPE = {
    "span_attributes": 128,
    "span_value": 1000,
    "events": 128,
    "event_attributes": 128,
    "event_value": 1000,
    "links": 128,
    "link_attributes": 128,
    "link_value": 1000,
}


def _span_shape(spans: Callable[[], list[ReadableSpan]]) -> dict[str, int]:
    attributes = {f"a{i:03}": _LONG for i in range(_MANY)}
    links = [
        Link(SpanContext(i + 1, i + 1, is_remote=True, trace_flags=TraceFlags(1)), attributes)
        for i in range(_MANY)
    ]
    tracer = trace.get_tracer("limits")
    with tracer.start_as_current_span("limited", attributes=attributes, links=links) as span:
        for i in range(_MANY):
            span.add_event(f"e{i}", attributes)
    (finished,) = spans()
    assert finished.attributes is not None
    event = finished.events[0]
    link = finished.links[0]
    assert event.attributes is not None
    assert link.attributes is not None
    return {
        "span_attributes": len(finished.attributes),
        "span_value": len(str(finished.attributes[_LAST])),
        "events": len(finished.events),
        "event_attributes": len(event.attributes),
        "event_value": len(str(event.attributes[_LAST])),
        "links": len(finished.links),
        "link_attributes": len(link.attributes),
        "link_value": len(str(link.attributes[_LAST])),
    }


_LIMITS = {
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": (
        "attribute_value_length_limit",
        {"span_value": 5, "event_value": 5, "link_value": 5},
        None,
    ),
    "OTEL_ATTRIBUTE_COUNT_LIMIT": (
        "attribute_count_limit",
        {"span_attributes": 5, "event_attributes": 5, "link_attributes": 5},
        128,
    ),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("span_attribute_value_length_limit", {"span_value": 5}, None),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("span_attribute_count_limit", {"span_attributes": 5}, None),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("span_event_count_limit", {"events": 5}, 128),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("span_link_count_limit", {"links": 5}, 128),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("event_attribute_count_limit", {"event_attributes": 5}, None),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("link_attribute_count_limit", {"link_attributes": 5}, None),
}
_covers(VALID_CASES, *_LIMITS)
_covers(INVALID_CASES, *_LIMITS)


def test_default_limits_on_a_real_span() -> None:
    with capture_spans() as recorder:
        assert _span_shape(lambda: recorder.spans) == DEFAULT_SHAPE


@pytest.mark.parametrize("var", list(_LIMITS))
def test_limit_variable_valid(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    setting, changes, _ = _LIMITS[var]
    monkeypatch.setenv(var, "5")
    with capture_spans() as recorder:
        assert getattr(recorder.tracing.settings, setting) == 5
        assert _span_shape(lambda: recorder.spans) == {**DEFAULT_SHAPE, **changes}


@pytest.mark.parametrize("var", list(_LIMITS))
@pytest.mark.parametrize("bad", ["-1", "lots"])
def test_limit_variable_invalid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, var: str, bad: str
) -> None:
    setting, _, fallback = _LIMITS[var]
    monkeypatch.setenv(var, bad)
    with capture_spans() as recorder:
        message = one_warning(caplog)
        assert message.startswith(f"tracekit: {var}={bad!r} is not valid (expected a whole number >= 0)")
        fallback_doc = next(d for d in declarations() if d.name == setting).describe_default()
        assert message.endswith(f"; using the default ({fallback_doc}) instead")
        assert getattr(recorder.tracing.settings, setting) == fallback
        assert _span_shape(lambda: recorder.spans) == DEFAULT_SHAPE


@pytest.mark.parametrize(
    ("env", "changes"),
    [
        (
            {"OTEL_ATTRIBUTE_COUNT_LIMIT": "2", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "4"},
            {"span_attributes": 4, "event_attributes": 2, "link_attributes": 2},
        ),
        (
            {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "6"},
            {"span_value": 6, "event_value": 3, "link_value": 3},
        ),
        (
            {"OTEL_ATTRIBUTE_COUNT_LIMIT": "2", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "7"},
            {"span_attributes": 2, "event_attributes": 7, "link_attributes": 2},
        ),
    ],
)
def test_specific_limits_win_over_general_ones(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], changes: dict[str, int]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with capture_spans() as recorder:
        assert _span_shape(lambda: recorder.spans) == {**DEFAULT_SHAPE, **changes}


# --------------------------------------------------------------------------- log level

_covers(VALID_CASES, "OTEL_LOG_LEVEL")
_covers(INVALID_CASES, "OTEL_LOG_LEVEL")


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("WARNING", logging.WARNING),
        ("error", logging.ERROR),
        ("critical", logging.CRITICAL),
    ],
)
def test_log_level(monkeypatch: pytest.MonkeyPatch, value: str, level: int) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_LOG_LEVEL": value}, exporters=[])
    assert tracing.settings.log_level == value.lower()
    assert tracekit_logger.level == level


@pytest.mark.parametrize("disabled", [False, True])
def test_shutdown_gives_the_tracekit_logger_its_level_back(
    monkeypatch: pytest.MonkeyPatch, disabled: bool
) -> None:
    tracekit_logger.setLevel(logging.ERROR)  # the application's own choice
    try:
        configure_with(monkeypatch, {"OTEL_LOG_LEVEL": "debug"}, exporters=[], disabled=disabled)
        assert tracekit_logger.level == logging.DEBUG
        tracekit.shutdown()
        assert tracekit_logger.level == logging.ERROR
    finally:
        tracekit_logger.setLevel(logging.NOTSET)


def test_log_level_error_silences_tracekit_warnings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    configure_with(monkeypatch, {"OTEL_LOG_LEVEL": "error"}, exporters=[])
    tracekit.configure()  # would warn "already called" at WARNING
    assert tracekit_warnings(caplog) == []


def test_log_level_invalid(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_LOG_LEVEL": "verbose"}, exporters=[])
    assert one_warning(caplog) == (
        "tracekit: OTEL_LOG_LEVEL='verbose' is not valid (expected one of debug, info, warn, warning, "
        "error, critical); using the default (info) instead"
    )
    assert tracing.settings.log_level == "info"
    assert tracekit_logger.level == logging.INFO


# --------------------------------------------------------------------------- instrumentation selection

_covers(VALID_CASES, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "OTEL_SEMCONV_STABILITY_OPT_IN")
_covers(INVALID_CASES, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "OTEL_SEMCONV_STABILITY_OPT_IN")


def test_disabled_instrumentations(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing = configure_with(
        monkeypatch, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " httpx,requests ,, httpx"}, exporters=[]
    )
    assert tracing.settings.disabled_instrumentations == ("httpx", "requests")
    assert tracing.sources["disabled_instrumentations"] == "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


def test_disabled_instrumentations_has_no_invalid_value_separators_alone_mean_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Any name is accepted here (integrations that do not exist are simply never patched).
    tracing = configure_with(monkeypatch, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " , ,"}, exporters=[])
    assert tracing.settings.disabled_instrumentations == ()
    assert tracekit_warnings(caplog) == []


def test_semconv_stability_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing = configure_with(
        monkeypatch, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup, DATABASE"}, exporters=[]
    )
    assert tracing.settings.semconv_opt_in == ("http/dup", "database")


@pytest.mark.parametrize(
    ("value", "expected", "ending"),
    [
        ("http/dupe", (), "; using the default ((empty)) instead"),
        ("messaging/dup,http/old", ("messaging/dup",), "; using messaging/dup"),
    ],
)
def test_semconv_stability_opt_in_invalid(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
    expected: tuple[str, ...],
    ending: str,
) -> None:
    tracing = configure_with(monkeypatch, {"OTEL_SEMCONV_STABILITY_OPT_IN": value}, exporters=[])
    message = one_warning(caplog)
    assert message.startswith(f"tracekit: OTEL_SEMCONV_STABILITY_OPT_IN={value!r}")
    assert "unknown name" in message
    assert message.endswith(ending)
    assert tracing.settings.semconv_opt_in == expected


def test_every_variable_has_a_valid_and_an_invalid_case() -> None:
    assert set() == ISSUE_VARIABLES - VALID_CASES
    assert set() == ISSUE_VARIABLES - INVALID_CASES


# --------------------------------------------------------------------------- keywords and precedence


@pytest.mark.parametrize(
    ("keyword", "kw_value", "var", "env_value", "env_effective", "default"),
    [
        ("service_name", "kw-name", "OTEL_SERVICE_NAME", "env-name", "env-name", None),
        ("sample_ratio", 0.5, "OTEL_TRACES_SAMPLER_ARG", "0.25", 0.25, 1.0),
        ("propagators", ["b3"], "OTEL_PROPAGATORS", "jaeger", ("jaeger",), ("tracecontext", "baggage")),
        ("timeout", 2.0, "OTEL_EXPORTER_OTLP_TIMEOUT", "5000", 5.0, 10.0),
        ("bsp_max_queue_size", 10, "OTEL_BSP_MAX_QUEUE_SIZE", "20", 20, 2048),
        ("log_level", "error", "OTEL_LOG_LEVEL", "debug", "debug", "info"),
        ("headers", {"a": "kw"}, "OTEL_EXPORTER_OTLP_HEADERS", "a=env,b=env", {"a": "env", "b": "env"}, {}),
    ],
)
def test_keyword_beats_environment_beats_default(
    monkeypatch: pytest.MonkeyPatch,
    keyword: str,
    kw_value: Any,
    var: str,
    env_value: str,
    env_effective: Any,
    default: Any,
) -> None:
    kw_effective = tuple(kw_value) if isinstance(kw_value, list) else kw_value
    assert getattr(load({}, environ={}).settings, keyword) == default
    from_env = load({}, environ={var: env_value})
    assert (getattr(from_env.settings, keyword), from_env.sources[keyword]) == (env_effective, var)
    from_kw = load({keyword: kw_value}, environ={var: env_value})
    assert (getattr(from_kw.settings, keyword), from_kw.sources[keyword]) == (kw_effective, "keyword")

    monkeypatch.setenv(var, env_value)
    tracing = tracekit.configure(**{keyword: kw_value})
    assert getattr(tracing.settings, keyword) == kw_effective


def test_keyword_headers_replace_environment_headers_in_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=env,b=env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "c=env")
    tracing = tracekit.configure(headers={"a": "kw"})
    assert http_exporter_view(only_exporter(tracing))["headers"] == {"a": "kw"}


def test_keyword_endpoint_beats_the_traces_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env.example:4318/v1/traces")
    tracing = tracekit.configure(endpoint="http://kw.example:4318")
    assert http_exporter_view(only_exporter(tracing))["endpoint"] == "http://kw.example:4318/v1/traces"


def test_a_keyword_hides_a_bad_variable_for_the_same_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    tracing = tracekit.configure(sampler="always_on", exporters=[])
    assert provider_of(tracing).sampler.get_description() == "AlwaysOnSampler"
    assert tracekit_warnings(caplog) == []


@pytest.mark.parametrize(
    ("keyword", "value", "accepted"),
    [
        ("sampler", "sometimes", "expected one of always_on, always_off, traceidratio"),
        ("sample_ratio", 1.5, "expected a number from 0 to 1"),
        ("sample_ratio", "half", "expected a number from 0 to 1"),
        ("sample_ratio", True, "expected a number from 0 to 1"),
        (
            "propagators",
            ["tracecontext", "xray"],
            "unknown name 'xray' skipped (known: tracecontext, baggage",
        ),
        ("exporters", ["zipkin"], "unknown name 'zipkin' skipped (known: otlp, console, none)"),
        ("exporters", 42, "expected a list of exporter names (otlp, console, none) or SpanExporter objects"),
        ("protocol", "http", "expected one of http/protobuf, grpc"),
        ("compression", "brotli", "expected one of gzip, none"),
        ("timeout", -1, "expected a number of seconds >= 0"),
        ("timeout", "10s", "expected a number of seconds >= 0"),
        ("endpoint", "ftp://collector", "the scheme must be http or https"),
        ("endpoint", "collector", "an endpoint without a scheme needs a port (host:port)"),
        ("certificate", "/nonexistent/ca.pem", "no such file: /nonexistent/ca.pem"),
        ("insecure", "yes", "expected true or false"),
        ("bsp_max_queue_size", 0, "expected a whole number >= 1"),
        ("bsp_max_export_batch_size", 2.5, "expected a whole number >= 1"),
        ("span_event_count_limit", -3, "expected a whole number >= 0"),
        ("log_level", "loud", "expected one of debug, info, warn, warning, error, critical"),
        ("service_name", 42, "expected a non-empty string"),
        ("resource_attributes", {"": "x"}, "expected comma-separated key=value pairs"),
        ("instrument", 3, "expected True, False or a list of integration names"),
        ("semconv_opt_in", ["http/dupe"], "unknown name 'http/dupe' skipped"),
        ("disabled", "maybe", "expected true or false"),
    ],
)
def test_bad_keyword_raises_config_error_naming_argument_value_and_accepted(
    keyword: str, value: Any, accepted: str
) -> None:
    provider_before = trace.get_tracer_provider()
    with pytest.raises(tracekit.ConfigError) as info:
        tracekit.configure(**{keyword: value})
    message = str(info.value)
    assert message.startswith(f"configure({keyword}={value!r}): ")
    assert accepted in message
    assert _state.current is None
    assert trace.get_tracer_provider() is provider_before


def test_unknown_keyword_raises_config_error() -> None:
    with pytest.raises(tracekit.ConfigError) as info:
        tracekit.configure(service="checkout", sampling=0.5)
    message = str(info.value)
    assert message.startswith("configure() got unknown argument(s) sampling, service; known arguments: ")
    assert "service_name" in message
    assert "sample_ratio" in message
    assert _state.current is None


def test_config_error_is_a_value_error() -> None:
    assert issubclass(tracekit.ConfigError, ValueError)


def test_keywords_mirror_the_settings() -> None:
    loaded = load(
        {
            "service_name": "svc",
            "service_version": "2.0",
            "environment": "prod",
            "sampler": "always_off",
            "sample_ratio": 0.3,
            "propagators": "b3multi,jaeger",
            "exporters": [],
            "endpoint": "http://c.example:4318",
            "protocol": "grpc",
            "headers": "k=v%20w",
            "timeout": 1.5,
            "compression": "gzip",
            "instrument": ["httpx"],
        },
        environ={},
    )
    expected = Settings(
        service_name="svc",
        service_version="2.0",
        environment="prod",
        sampler="always_off",
        sample_ratio=0.3,
        propagators=("b3multi", "jaeger"),
        exporters=(),
        endpoint="http://c.example:4318",
        protocol="grpc",
        headers={"k": "v w"},
        timeout=1.5,
        compression="gzip",
        instrument=("httpx",),
    )
    assert loaded.settings == expected


# --------------------------------------------------------------------------- lifecycle


def test_second_configure_warns_and_returns_the_same_tracing(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    first = tracekit.configure(exporters=[exporter])
    second = tracekit.configure(exporters=[InMemorySpanExporter()], service_name="other")
    assert second is first
    assert one_warning(caplog) == (
        "tracekit: configure() was already called; keeping the first configuration "
        "(call tracekit.shutdown() first to reconfigure)"
    )
    assert exporters_of(first) == [exporter]
    assert trace.get_tracer_provider() is first.provider


def test_shutdown_then_configure_again_and_spans_flow(caplog: pytest.LogCaptureFixture) -> None:
    with capture_spans(service_name="first") as first:
        with trace.get_tracer("test").start_as_current_span("one"):
            pass
        assert [(s.name, s.resource.attributes["service.name"]) for s in first.spans] == [("one", "first")]
    assert first.tracing.enabled is False
    assert _state.current is None

    with capture_spans(service_name="second") as second:
        assert second.tracing is not first.tracing
        assert trace.get_tracer_provider() is second.tracing.provider
        with trace.get_tracer("test").start_as_current_span("two"):
            pass
        assert [(s.name, s.resource.attributes["service.name"]) for s in second.spans] == [("two", "second")]
    assert tracekit_warnings(caplog) == []


def test_module_level_shutdown_restores_the_previous_propagator() -> None:
    from opentelemetry import propagate

    before = propagate.get_global_textmap()
    tracekit.configure(exporters=[], propagators=["b3"])
    assert global_propagators() == [_propagator_types()["b3"]]
    tracekit.shutdown()
    assert propagate.get_global_textmap() is before
    tracekit.shutdown()  # a second call is a no-op


def test_export_header_values_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tracekit")
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t-value,Bearer hunter2"}
    loaded = load({}, environ)
    assert loaded.settings.headers == {"x-api-key": "s3cr3t-value"}
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "s3cr3t-value" not in text
    assert "hunter2" not in text
    assert "malformed pair number 2 skipped" in text
    assert "keys: x-api-key" in text
