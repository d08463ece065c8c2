"""The machine's database servers, from TRACEKIT_TEST_* variables (defaults: the standard local ports).

* PostgreSQL: TRACEKIT_TEST_POSTGRES_HOST (127.0.0.1), _PORT (5432), _USER (postgres), _DB (test);
* MariaDB / MySQL: TRACEKIT_TEST_MYSQL_HOST (127.0.0.1), _PORT (3306), _USER (root), _PASSWORD (empty),
  _DB (test);
* Redis: TRACEKIT_TEST_REDIS_HOST (127.0.0.1), _PORT (6379), _DB (0).

A test whose server is closed skips (fails under TRACEKIT_TEST_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("dbcheck")

_ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"


def _require_service(config: pytest.Config, *args: Any) -> None:
    """tests/conftest.py's require_service (the name ``conftest`` is taken by this module)."""
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "").resolve() == _ROOT_CONFTEST:
            plugin.require_service(*args)
            return
    raise RuntimeError("tests/conftest.py is not loaded")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRACEKIT_TEST_{name}") or default


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str = ""
    password: str = ""
    database: str = ""

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"

    def url(self, scheme: str) -> str:
        password = f":{self.password}" if self.password else ""
        return f"{scheme}://{self.user}{password}@{self.host}:{self.port}/{self.database}"


@pytest.fixture(scope="session")
def postgres(pytestconfig: pytest.Config) -> Server:
    server = Server(
        _env("POSTGRES_HOST", "127.0.0.1"),
        int(_env("POSTGRES_PORT", "5432")),
        _env("POSTGRES_USER", "postgres"),
        _env("POSTGRES_PASSWORD", ""),
        _env("POSTGRES_DB", "test"),
    )
    _require_service(
        pytestconfig,
        "PostgreSQL",
        server.host,
        server.port,
        "apt-get install postgresql && service postgresql start",
    )
    return server


@pytest.fixture(scope="session")
def mysql(pytestconfig: pytest.Config) -> Server:
    server = Server(
        _env("MYSQL_HOST", "127.0.0.1"),
        int(_env("MYSQL_PORT", "3306")),
        _env("MYSQL_USER", "root"),
        _env("MYSQL_PASSWORD", ""),
        _env("MYSQL_DB", "test"),
    )
    _require_service(
        pytestconfig,
        "MariaDB",
        server.host,
        server.port,
        "apt-get install mariadb-server && service mariadb start",
    )
    return server


@pytest.fixture(scope="session")
def redis_server(pytestconfig: pytest.Config) -> Server:
    server = Server(
        _env("REDIS_HOST", "127.0.0.1"), int(_env("REDIS_PORT", "6379")), database=_env("REDIS_DB", "0")
    )
    _require_service(
        pytestconfig,
        "Redis",
        server.host,
        server.port,
        "apt-get install redis-server && service redis-server start",
    )
    return server
