"""Checks that a test let go of what it opened, as an autouse fixture for conftest.py."""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def every_sqlite_connection_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves an SQLite connection open, on every Python.

    Python 3.13 warns of an unclosed connection only when the garbage
    collector gets to it, during whichever test runs then, and 3.11 and 3.12
    never do: so each connection opened during the test is checked as it ends.
    """
    opened: list[tuple[sqlite3.Connection, list[traceback.FrameSummary]]] = []
    connect = sqlite3.connect

    def tracked(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        opened.append((conn, traceback.extract_stack(limit=5)[:-1]))
        return conn

    monkeypatch.setattr(sqlite3, "connect", tracked)
    yield
    left = [(conn, stack) for conn, stack in opened if _is_open(conn)]
    for conn, _ in left:
        conn.close()  # so that the garbage collector does not warn of it again in a later test
    if left:
        where = "\n".join("".join(traceback.format_list(stack)) for _, stack in left)
        pytest.fail(f"{len(left)} SQLite connection(s) left open, opened at:\n{where}", pytrace=False)


def _is_open(conn: sqlite3.Connection) -> bool:
    try:
        _ = conn.total_changes  # answers from any thread; raises once the connection is closed
    except sqlite3.ProgrammingError:
        return False
    return True


@pytest.fixture(autouse=True)
def every_postgresql_connection_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves a PostgreSQL connection open, however it was opened (a pool's included).

    Connections of fixtures wider than a test are opened before this check
    starts and are not its business; a test's own fixtures are closed before it ends.
    """
    try:
        import psycopg  # noqa: PLC0415 - the cluster extra is optional
    except ImportError:
        yield
        return
    opened: list[tuple[Any, list[traceback.FrameSummary]]] = []
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]
    aconnect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    def tracked(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        opened.append((conn, traceback.extract_stack(limit=6)[:-1]))
        return conn

    async def atracked(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await aconnect(cls, *args, **kwargs)
        opened.append((conn, traceback.extract_stack(limit=6)[:-1]))
        return conn

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(tracked))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(atracked))
    monkeypatch.setattr(psycopg, "connect", psycopg.Connection.connect)  # bound when psycopg was imported
    yield
    left = [(conn, stack) for conn, stack in opened if not conn.closed]
    for conn, _ in left:
        conn.pgconn.finish()  # the socket, at once: the test's event loop is gone
    if left:
        where = "\n".join("".join(traceback.format_list(stack)) for _, stack in left)
        pytest.fail(f"{len(left)} PostgreSQL connection(s) left open, opened at:\n{where}", pytrace=False)
