"""CPU accounting for benchmarks: this process's CPU and the PostgreSQL server's, per event.

Events per second alone flatter whichever side moves work to the other: a writer that makes the
server parse a bigger document looks fast while the server burns the second core. So every run
also reports CPU per event, split into Python (``time.process_time`` of this process, all of its
threads) and PostgreSQL (every process of the server: the postmaster's own and reaped
children's time from ``/proc/<postmaster>/stat`` plus every live child's, so backends that exit
during the run still count).

Reading ``/proc`` only works for a server on this machine (the embedded one, or a local
``--database-url``); otherwise :class:`ServerCpu` reports ``None`` and the table prints ``-``. On
a shared server the figure includes other sessions' load: the embedded server is the clean one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

#: A backend that just exited is a zombie whose time reads as zero until the postmaster reaps
#: it and adds it to its own children's total; a short pause lets that happen.
_SETTLE = 0.1
_TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


class ServerCpu:
    """CPU seconds used so far by a local PostgreSQL server (all of its processes)."""

    def __init__(self, admin_conninfo: str) -> None:
        self.postmaster: int | None = None
        try:
            with psycopg.connect(admin_conninfo, autocommit=True) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                # read while the backend lives: once the connection closes, its /proc entry
                # may already be gone and the server's CPU would silently go unreported
                fields = _stat_fields(int(row[0])) if row else None
            if fields is not None:
                self.postmaster = int(fields[1])  # field 4 of the file: the parent's pid
        except (psycopg.Error, ValueError):
            self.postmaster = None

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        own = _stat_fields(self.postmaster)
        if own is None:
            return None
        # fields 14-17 of the file (utime, stime, cutime, cstime), 0-based 11..14 here
        total = sum(int(v) for v in own[11:15])
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(self.postmaster):
                total += int(fields[11]) + int(fields[12])
        return total / _TICK


@dataclass
class CpuUse:
    """CPU seconds spent during one measured run."""

    python: float = 0.0
    server: float | None = None

    def per_event_us(self, events: int) -> tuple[float, float | None]:
        if events <= 0:
            return float("nan"), None
        server = None if self.server is None else self.server * 1e6 / events
        return self.python * 1e6 / events, server


@contextmanager
def measure_cpu(server: ServerCpu | None) -> Iterator[CpuUse]:
    """``with measure_cpu(server) as cpu: ...`` fills ``cpu`` when the block ends."""
    use = CpuUse()
    clock: Callable[[], float] = time.process_time
    p0 = clock()
    s0 = server.seconds() if server is not None else None
    try:
        yield use
    finally:
        use.python = clock() - p0
        if server is not None:
            time.sleep(_SETTLE)  # backends closed at the end are reaped (their time moves)
        s1 = server.seconds() if server is not None else None
        use.server = None if s0 is None or s1 is None else s1 - s0


__all__ = ["CpuUse", "ServerCpu", "measure_cpu"]
