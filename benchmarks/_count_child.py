"""One variant of one timed benchmark, run for a given number of operations and nothing else.

``python -m benchmarks._count_child BENCHMARK ROLE OPERATIONS``: builds the benchmark as the
timed run does (same set-up, same switching, same span count check), runs its warm-up and
then ``OPERATIONS`` operations of the variant whose role is ``ROLE`` (``bare``,
``tracekit`` or ``peer``), and exits. ``benchmarks.instructions`` runs it under callgrind
twice with different ``OPERATIONS`` and divides the difference by the difference, so that
start-up, set-up and teardown cancel out.
"""

from __future__ import annotations

import sys

from benchmarks._harness import Benchmark, Scale

__all__ = ["find", "main"]


def find(name: str) -> Benchmark:
    """The timed benchmark called ``name``, at full scale."""
    from benchmarks.__main__ import TIMED

    for build in TIMED.values():
        for benchmark in build(Scale()):
            if benchmark.name == name:
                return benchmark
    raise SystemExit(f"no timed benchmark called {name!r}")


def main(argv: list[str]) -> int:
    name, role, operations = argv
    benchmark = find(name)
    with benchmark.setup() as variants:
        variant = next((v for v in variants if v.role == role), None)
        if variant is None:
            raise SystemExit(f"{name} has no {role!r} variant")
        with variant.session() as batch:
            batch(benchmark.warmup)
            batch(int(operations))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
