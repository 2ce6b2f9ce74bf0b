"""Replaying spool files into PostgreSQL, and telling a refused line from an outage.

A replay inserts a file's lines in order, ``max_batch`` at a time, with ``ON CONFLICT DO
NOTHING`` (a line replayed twice is stored once). Two kinds of failure look alike from the
insert's point of view and must be treated opposite ways:

- the database is unreachable, shutting down, out of resources or too slow: the whole replay
  stops, the writer's circuit stays open and the file is replayed again later, untouched;
- the database *refuses* a line (a data or integrity error, a row-level security check): retrying
  can never succeed, and before this module one such line blocked every later event forever.
  The batch is retried line by line; each refused line is quarantined with the database's
  SQLSTATE and message (:mod:`carelog.audit.quarantine`) and the replay continues.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from carelog.audit.batching import WriterStats
from carelog.audit.spool import Spool, SpoolEntry

Execute = Callable[[list[dict[str, Any]]], Awaitable[None]]

# SQLSTATE classes of a statement the database will refuse again however often it is retried:
# 22 data exception, 23 integrity constraint violation (a missing organization: 23503).
_REFUSAL_CLASSES = ("22", "23")


def is_refusal(exc: BaseException) -> bool:
    """True when PostgreSQL refused the rows themselves (not an outage or a timeout)."""
    if not isinstance(exc, psycopg.Error) or isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate or ""
    if state[:2] in _REFUSAL_CLASSES:
        return True
    # a row the writer role may not insert under row-level security (WITH CHECK)
    return state == "42501" and "row-level security" in str(exc)


def describe_db_error(exc: BaseException) -> str:
    """One line naming the cause: SQLSTATE and the server's message, or the exception type."""
    if isinstance(exc, psycopg.Error):
        message = (str(exc).strip().splitlines() or [""])[0]
        state = f"SQLSTATE {exc.sqlstate}: " if exc.sqlstate else ""
        return f"{type(exc).__name__} ({state}{message})"
    if isinstance(exc, TimeoutError):
        return "TimeoutError (no answer within the deadline)"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__} ({text[0]})" if text else type(exc).__name__


def _rows(entries: list[SpoolEntry]) -> list[dict[str, Any]]:
    return [{**e.row, "source": "spool"} for e in entries]


async def replay_spool(spool: Spool, execute: Execute, max_batch: int, stats: WriterStats) -> None:
    """Replay every spool file no live process holds, oldest first, removing each once its
    lines are stored or quarantined."""
    for path in spool.pending():
        with spool.claim(path) as mine:
            if not mine:
                continue
            stats.replayed += await replay_file(spool, path, execute, max_batch)
            spool.remove(path)


async def replay_file(spool: Spool, path: Path, execute: Execute, max_batch: int) -> int:
    """Insert the readable lines of ``path`` (unreadable ones are quarantined by the spool's
    reader); returns how many were stored. Raises on an outage: nothing is lost, the file is
    simply replayed again."""
    stored = 0
    chunk: list[SpoolEntry] = []
    for entry in spool.entries(path):
        chunk.append(entry)
        if len(chunk) >= max_batch:
            stored += await _replay_chunk(spool, path, chunk, execute)
            chunk = []
    if chunk:
        stored += await _replay_chunk(spool, path, chunk, execute)
    return stored


async def _replay_chunk(spool: Spool, path: Path, chunk: list[SpoolEntry], execute: Execute) -> int:
    try:
        await execute(_rows(chunk))
        return len(chunk)
    except Exception as exc:
        if not is_refusal(exc):
            raise
    stored = 0
    for entry in chunk:  # refused as a whole: find the line(s) the database refuses
        try:
            await execute(_rows([entry]))
        except Exception as exc:
            if not is_refusal(exc):
                raise
            spool.quarantine.add(
                path.name, entry.line, entry.data, kind="refused", reason=describe_db_error(exc)
            )
            continue
        stored += 1
    return stored
