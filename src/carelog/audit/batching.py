"""The writer's bookkeeping: producer groups and the operators' counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass
class WriterStats:
    """Counters for operators; no event content ever goes here or into logs."""

    submitted: int = 0
    committed: int = 0
    spooled: int = 0
    replayed: int = 0
    batches: int = 0
    db_failures: int = 0
    spool_failures: int = 0
    refused: int = 0  # calls that failed: neither committed nor fsync'd
    refused_fail_closed: int = 0
    circuit_open: bool = False
    spool_failing: bool = False  # the last spool append failed
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def health_of(stats: WriterStats, quarantined: int) -> dict[str, Any]:
    """The writer's state for ``/health``: ``ok``; ``spooling`` (database unreachable, events
    fsync'd locally); ``refusing`` (neither possible: audited actions fail with 503)."""
    if stats.circuit_open and stats.spool_failing:
        state = "refusing"
    elif stats.circuit_open:
        state = "spooling"
    else:
        state = "ok"
    return {
        "state": state,
        "circuit_open": stats.circuit_open,
        "spool_writable": not stats.spool_failing,
        "spooled": stats.spooled,
        "refused": stats.refused,
        "quarantined": quarantined,
        "last_error": stats.last_error,
    }


class GroupFuture(asyncio.Future[bool]):
    """Shared by the producers of one group: its result says whether the group's events were
    refused (neither committed nor fsync'd). It cannot be cancelled: cancelling one waiting
    producer must not cancel the others' wait. (``Task.cancel`` then marks the producer's task
    instead, and the ``CancelledError`` is delivered when the group is resolved, within the
    write deadline.)"""

    def cancel(self, msg: Any | None = None) -> bool:
        return False


class Group:
    """Events that share one future; taken by a lane as a whole."""

    __slots__ = ("closed", "future", "wires")

    def __init__(self, future: asyncio.Future[bool]) -> None:
        self.wires: list[bytes] = []
        self.closed: list[int] = []  # positions of fail-closed events (rare)
        self.future = future
