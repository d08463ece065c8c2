"""tracekit's bootstrap: ``tracekit run`` puts this directory first on ``PYTHONPATH``.

Python imports ``sitecustomize`` while it starts, before the application's first import.
This one takes its own directory back off ``sys.path`` (so the application sees the path
it would see without tracekit), configures tracing from the environment, then runs the
application's own ``sitecustomize``, if there is one, exactly as Python would have.

``PYTHONPATH`` itself is left as it is, so that child processes (multiprocessing spawn,
uvicorn and gunicorn workers, subprocesses) are traced too: each configures itself once.
Nothing here may stop the interpreter from starting.
"""

import os
import sys


def _forget_own_directory() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    kept = []
    for entry in sys.path:
        try:
            same = os.path.samefile(entry or os.curdir, here)
        except OSError:
            same = False
        if same:
            sys.path_importer_cache.pop(entry, None)
        else:
            kept.append(entry)
    sys.path[:] = kept


def _configure() -> None:
    try:
        from tracekit._launcher import bootstrap
    except ImportError as exc:
        sys.stderr.write(
            f"tracekit: not tracing {sys.executable}: this interpreter cannot import tracekit ({exc})\n"
        )
        return
    bootstrap()


def _chain_to_the_application_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_forget_own_directory()
_configure()
_chain_to_the_application_sitecustomize()
