"""The public surface is exactly what is intended, documented, and cheap to import."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import tracekit
import tracekit.logs
import tracekit.testing


def test_the_facade_exports_exactly_the_public_api() -> None:
    assert sorted(tracekit.__all__) == sorted(
        [
            "ConfigError",
            "ExportStats",
            "Tracing",
            "__version__",
            "configure",
            "instrument",
            "shutdown",
            "span",
            "stats",
            "traced",
            "uninstrument",
        ]
    )
    public = {name for name in vars(tracekit) if not name.startswith("_")}
    assert public - set(tracekit.__all__) <= {"logs", "testing", "exporters", "integrations", "kafka"}


def test_every_public_name_has_a_docstring() -> None:
    for module in (tracekit, tracekit.logs, tracekit.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


INSTRUMENTED = ("grpc", "httpx", "requests", "urllib3", "aiohttp", "psycopg", "psycopg2", "redis", "kafka")


def test_configure_imports_no_instrumented_library() -> None:
    loaded = _modules_after("import tracekit\ntracekit.configure(exporters=[])")
    assert [name for name in INSTRUMENTED if name in loaded] == []


def test_import_tracekit_loads_nothing_else() -> None:
    loaded = _modules_after("import tracekit")
    assert sorted(name for name in loaded if name.startswith(("tracekit", "opentelemetry", "wrapt"))) == [
        "tracekit",
        "tracekit._version",
    ]


# The exporter is built when it first has spans to send; this builds it at once.
_BUILD_EXPORTER = (
    "from tracekit._configure import _processors\n"
    "[processor.exporter._ready() for processor in _processors(tracing.provider)]"
)


def test_the_default_exporter_brings_only_its_own_http_stack_when_first_used() -> None:
    configured = _modules_after("import tracekit\ntracing = tracekit.configure()")
    assert [name for name in INSTRUMENTED if name in configured] == []
    assert "tracekit.exporters._transport" not in configured
    # The OTLP/HTTP transport sends with httpx; nothing else comes, not even protobuf.
    loaded = _modules_after(f"import tracekit\ntracing = tracekit.configure()\n{_BUILD_EXPORTER}")
    assert [name for name in INSTRUMENTED if name in loaded] == ["httpx"]
    assert "tracekit.exporters._transport" in loaded
    assert not [name for name in loaded if name.startswith(("google.protobuf", "opentelemetry.proto"))]
    assert not [name for name in loaded if name.startswith("opentelemetry.exporter")]


def test_grpc_is_imported_only_when_asked_for_and_then_at_once() -> None:
    # Imported by configure(): a first import at exit could not start the threads gRPC needs.
    loaded = _modules_after("import tracekit\ntracing = tracekit.configure(protocol='grpc')")
    assert "grpc" in loaded
    assert "httpx" not in loaded
    assert not [name for name in loaded if name.startswith(("google.protobuf", "opentelemetry.proto"))]


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("tracekit").joinpath("py.typed").is_file()
