"""The documentation stays true to the code it describes."""

from __future__ import annotations

from pathlib import Path

from tracekit._settings import TABLE_END, TABLE_START, declarations, render_markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_table_matches_the_declarations() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert table.strip() == render_markdown_table().strip(), (
        "docs/configuration.md is out of date; regenerate it with "
        "python -c \"from tracekit._settings import update_docs; update_docs('docs/configuration.md')\""
    )


def test_every_environment_variable_is_documented_once() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1]
    for decl in declarations():
        for var in decl.env:
            assert table.count(f"`{var}`") == 1, var


def test_the_foundation_variables_are_all_declared() -> None:
    declared = {var for decl in declarations() for var in decl.env}
    expected = {
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_EXPORTER",
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
    for suffix in (
        "ENDPOINT",
        "PROTOCOL",
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "CERTIFICATE",
        "CLIENT_KEY",
        "CLIENT_CERTIFICATE",
        "INSECURE",
    ):
        expected |= {f"OTEL_EXPORTER_OTLP_{suffix}", f"OTEL_EXPORTER_OTLP_TRACES_{suffix}"}
    assert expected <= declared, sorted(expected - declared)
