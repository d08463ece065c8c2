"""``python -m tracekit``: the ``tracekit`` command."""

from tracekit._cli import main

raise SystemExit(main())
