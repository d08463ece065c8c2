"""redis-py: a CLIENT span per command, pipeline and transaction, sync and asyncio.

``Redis.execute_command`` is one span named after the command (``GET``), with
``db.query.text`` the command and its key pattern, never the values: ``SET user:? ?``. In a
key, the segments between ``:``, ``/``, ``.``, ``|``, ``#`` and ``-`` that are not plain words
(digits, ids, e-mail addresses) become ``?``. A pipeline's ``execute`` is one span named
``PIPELINE``, or ``MULTI`` for a transaction, with ``db.operation.batch.size`` and the
commands' texts joined by ``; ``; commands run while a key is ``WATCH``-ed are spans of their own.
``db.namespace`` is the database index. ``db.response.status_code`` is the error prefix
(``WRONGTYPE``, ``ERR``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tracekit._db import (
    Args,
    Database,
    Endpoint,
    Kwargs,
    Request,
    async_wrapper,
    cached_endpoint,
    status_code,
    sync_wrapper,
)
from tracekit._patch import Patches, Plain
from tracekit._sql import Analysis

__all__ = ["DATABASE", "command_text", "patch", "patches", "unpatch"]

#: Commands whose first argument is not a key: every argument is hidden.
_KEYLESS = frozenset(
    str.split(
        """
    AUTH HELLO PING ECHO SELECT CLIENT CONFIG INFO FLUSHDB FLUSHALL DBSIZE SCAN EVAL EVALSHA EVAL_RO
    EVALSHA_RO FCALL FCALL_RO SCRIPT FUNCTION MULTI EXEC DISCARD UNWATCH QUIT RESET SWAPDB TIME LASTSAVE
    SAVE BGSAVE BGREWRITEAOF SHUTDOWN SLOWLOG MEMORY LATENCY MODULE ACL CLUSTER COMMAND READONLY
    READWRITE WAIT WAITAOF MONITOR DEBUG ROLE REPLICAOF SLAVEOF SYNC PSYNC LOLWUT OBJECT PUBSUB
    SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE KEYS RANDOMKEY
    """
    )
)
_SEGMENT = re.compile(r"[^:/.|#\-]+")
_WORD = re.compile(r"[A-Za-z_]+")


def _segment(match: re.Match[str]) -> str:
    segment = match.group()
    return segment if _WORD.fullmatch(segment) else "?"


def _key_pattern(key: Any) -> str:
    if isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key).decode("utf-8", "replace")
    elif not isinstance(key, str):
        return "?"
    return _SEGMENT.sub(_segment, key)


def _name(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def command_text(args: Args) -> str:
    """``SET user:? ?``: the command name, its key's pattern, a ``?`` per other argument."""
    if not args:
        return ""
    name = _name(args[0])
    if len(args) == 1:
        return name
    if name.upper() in _KEYLESS or " " in name:
        return " ".join((name, *("?" * (len(args) - 1))))
    return " ".join((name, _key_pattern(args[1]), *("?" * (len(args) - 2))))


def _raw_text(args: Args) -> str:
    return " ".join(_name(arg) for arg in args)


def _status(exc: BaseException) -> str | None:
    code = status_code(exc)
    if code is not None:
        return code
    if type(exc).__module__.startswith("redis"):
        prefix = str(exc).split(" ", 1)[0]
        if prefix.isupper() and prefix.replace("_", "").isalpha():
            return prefix
    return None


DATABASE = Database("redis", _status)


def _make_endpoint(pool: Any) -> Endpoint:
    settings = pool.connection_kwargs
    namespace = str(settings.get("db", 0))
    path = settings.get("path")
    if path:
        return Endpoint("redis", namespace, str(path))
    host, port = settings.get("host", "localhost"), settings.get("port", 6379)
    return Endpoint("redis", namespace, str(host), int(port))


def _endpoint(client: Any) -> Endpoint:
    return cached_endpoint(client.connection_pool, _make_endpoint)


def _command(client: Any, args: Args, kwargs: Kwargs) -> Request | None:
    if not args:
        return None
    name = _name(args[0])
    return Request(
        _endpoint(client),
        analysis=Analysis(command_text(args), None, name, None),
        raw=lambda: _raw_text(args),
    )


def _pipeline(pipeline: Any, args: Args, kwargs: Kwargs) -> Request | None:
    stack: Iterable[Any] = pipeline.command_stack
    commands = [command for command, _options in stack]
    if not commands:
        return None
    operation = "MULTI" if pipeline.transaction or pipeline.explicit_transaction else "PIPELINE"
    text = "; ".join(command_text(command) for command in commands)
    return Request(
        _endpoint(pipeline),
        analysis=Analysis(text, None, operation, None),
        batch=len(commands),
        raw=lambda: "; ".join(_raw_text(command) for command in commands),
    )


patches = Patches(
    "redis",
    {
        "redis": [
            ("client.Redis.execute_command", Plain(sync_wrapper(DATABASE, _command))),
            ("client.Pipeline.immediate_execute_command", Plain(sync_wrapper(DATABASE, _command))),
            ("client.Pipeline.execute", Plain(sync_wrapper(DATABASE, _pipeline))),
            ("asyncio.client.Redis.execute_command", async_wrapper(DATABASE, _command)),
            ("asyncio.client.Pipeline.immediate_execute_command", async_wrapper(DATABASE, _command)),
            ("asyncio.client.Pipeline.execute", async_wrapper(DATABASE, _pipeline)),
        ]
    },
)
patch = patches.apply
unpatch = patches.revert
