"""Re-driving quarantined spool lines once their cause is fixed (``carelog audit spool redrive``).

A line PostgreSQL refused (an organization that was missing, a constraint since relaxed) is
inserted again, exactly as the writer would have (``ON CONFLICT DO NOTHING``: re-driving twice
stores once). What is still refused stays, with the database's current reason; unreadable lines
are never guessed at and stay for a person to inspect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import psycopg

from carelog.audit.quarantine import Entry, Quarantine
from carelog.audit.recovery import describe_db_error, is_refusal
from carelog.audit.spool import decode_line
from carelog.audit.wire import INSERT_SQL, document

log = logging.getLogger("carelog.audit.redrive")


@dataclass(frozen=True)
class RedriveResult:
    stored: int  # inserted now (or already present: ON CONFLICT DO NOTHING)
    kept: int  # still refused, or unreadable: left in the quarantine


async def redrive(quarantine: Quarantine, conninfo: str) -> RedriveResult:
    """Insert the quarantined lines that are intact JSON again (after the cause was fixed);
    keep those the database still refuses (with its new reason) and the unreadable ones.
    Raises on an outage, leaving the quarantine as it was."""
    keep: list[Entry] = []
    stored = 0
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for entry in quarantine.entries():
            row = decode_line(entry.data)
            if row is None:
                keep.append(entry)
                continue
            try:
                await conn.execute(INSERT_SQL, (document([{**row, "source": "spool"}]),))
            except psycopg.Error as exc:
                if not is_refusal(exc):
                    raise
                keep.append(replace(entry, reason=describe_db_error(exc)))
                continue
            stored += 1
    quarantine.replace(keep)
    log.warning("audit quarantine re-driven: %d stored, %d kept", stored, len(keep))
    return RedriveResult(stored, len(keep))
