"""Start-up: whole Python processes, from exec to exit, run one after another.

Every command runs with the same environment: no ``OTEL_*`` variable from the caller,
traces exported over http/protobuf to a local OTLP receiver (so exporters are built, and
nothing waits on a closed port at exit), metrics and logs exporters off (tracekit exports
traces only). Each round runs each command once, in rotated order; medians over rounds.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks._harness import Batch, Benchmark, Role, Scale, Session, Unavailable, Variant
from benchmarks.export import local_receiver

__all__ = ["benchmarks"]

_TIMEOUT = 60.0


def _environment(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEKIT_"))}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "benchmarks",
        }
    )
    return env


def _script(name: str) -> str | None:
    """A console script installed next to this interpreter (the benchmark's venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def _command_session(argv: Sequence[str] | str, env: dict[str, str]) -> Session:
    @contextmanager
    def session() -> Iterator[Batch]:
        if isinstance(argv, str):
            raise Unavailable(argv)

        def batch(n: int) -> None:
            for _ in range(n):
                done = subprocess.run(
                    argv, env=env, capture_output=True, text=True, timeout=_TIMEOUT, check=False
                )
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                    raise Unavailable(f"`{' '.join(argv)}` failed: {last}")

        yield batch

    return session


def _tracekit_run() -> list[str] | str:
    """``tracekit run python -c pass``, or why it cannot be run."""
    script = _script("tracekit")
    if script is not None:
        return [script, "run", sys.executable, "-c", "pass"]
    if importlib.util.find_spec("tracekit.__main__") is not None:
        return [sys.executable, "-m", "tracekit", "run", sys.executable, "-c", "pass"]
    return "neither the `tracekit` command nor `python -m tracekit` is installed (issue 6)"


def _label(argv: list[str] | str, default: str) -> str:
    """``default``, or ``python -m tracekit run ...`` when that is what runs."""
    if isinstance(argv, list) and argv[1:3] == ["-m", "tracekit"]:
        return "python -m " + default
    return default


def _opentelemetry_instrument() -> list[str] | str:
    script = _script("opentelemetry-instrument")
    if script is None:
        return "`opentelemetry-instrument` is not installed (pip install opentelemetry-distro)"
    return [script, sys.executable, "-c", "pass"]


@contextmanager
def _setup() -> Iterator[Sequence[Variant]]:
    python = sys.executable
    configure = "import tracekit; tracekit.configure(exporters=[])"
    tracekit_run = _tracekit_run()
    with ExitStack() as stack:
        try:
            endpoint = stack.enter_context(local_receiver()).http
        except Unavailable:
            endpoint = "http://127.0.0.1:4318"  # nothing is exported by `-c pass`; no wait at exit
        env = _environment(endpoint)
        commands: list[tuple[str, Role, list[str] | str]] = [
            ("python -c pass", "bare", [python, "-c", "pass"]),
            (
                "python -c 'import opentelemetry.sdk.trace'",
                "reference",
                [python, "-c", "import opentelemetry.sdk.trace"],
            ),
            (f'python -c "{configure}"', "reference", [python, "-c", configure]),
            (_label(tracekit_run, "tracekit run python -c pass"), "tracekit", tracekit_run),
            ("opentelemetry-instrument python -c pass", "peer", _opentelemetry_instrument()),
        ]
        yield [Variant(label, role, _command_session(argv, env)) for label, role, argv in commands]


def benchmarks(scale: Scale) -> list[Benchmark]:
    return [
        Benchmark(
            name="startup",
            family="startup",
            title="Process start-up",
            description="Wall time of a whole process, from start to exit. Environment: "
            "`OTEL_TRACES_EXPORTER=otlp`, `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` to a local "
            "receiver, `OTEL_METRICS_EXPORTER=none`, `OTEL_LOGS_EXPORTER=none`; the benchmark's "
            "virtual environment has every peer and workload library installed.",
            switching="one subprocess per run, rounds interleaved",
            setup=_setup,
            rounds=scale.rounds(11),
            iterations=1,
            warmup=1,
            unit="ms",
            clock="wall",
            show_other_clock=False,
        )
    ]
