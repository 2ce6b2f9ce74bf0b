"""The local append-only spool: where events go while PostgreSQL cannot take them.

An event is acknowledged only once it is durable somewhere. When the database is unreachable
(or slower than the group-commit deadline) the writer appends the batch here and ``fsync``s the
file before acknowledging. Each line carries a CRC-32 of its JSON, so a line torn by a crash
(never acknowledged: the fsync had not returned) is recognised on replay and, like any line
that cannot be read, moved to the spool's quarantine (:mod:`carelog.audit.quarantine`) with its
bytes, file name and line number; nothing unreplayed is ever deleted.

A failed append (``ENOSPC``, ``EIO``) leaves no fragment behind: the file is truncated back to
the end of its last complete line before the error reaches the writer, and the file is closed
(a new one is started by the next append), so the next acknowledged batch never lands after a
half-written line.

Each process appends to a file of its own and holds an exclusive ``flock`` on it, so another
process never replays a file that is still being written; files left by a crashed process are
unlocked and get replayed by whichever writer starts next. Replays insert with
``ON CONFLICT DO NOTHING`` on the event's primary key, so replaying twice stores once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from carelog.audit.quarantine import Quarantine

log = logging.getLogger("carelog.audit.spool")


def encode_body(body: bytes) -> bytes:
    """One spool line: the CRC-32 of an already serialised JSON object, the object, a newline."""
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def encode_line(row: dict[str, Any]) -> bytes:
    return encode_body(orjson.dumps(row))


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The row, or None for a torn or corrupted line."""
    row, _ = _decode(line)
    return row


def _decode(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The row, or None and why not."""
    if not line.endswith(b"\n"):
        return None, "torn final line (no newline): cut by a crash before its fsync"
    if len(line) < 10 or line[8:9] != b" ":
        return None, "malformed line (no CRC prefix)"
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None, "CRC-32 mismatch (the line was changed on disk)"
        row = orjson.loads(body)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    return row, ""


@dataclass(frozen=True)
class SpoolEntry:
    """One readable line of a spool file: where it is, its bytes and the row."""

    line: int
    data: bytes
    row: dict[str, Any]


def describe_os_error(exc: OSError) -> str:
    """``ENOSPC (No space left on device)``: the errno's name and text, for log lines."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{name} ({exc.strerror or exc})"


class Spool:
    """A directory of spool files; this process appends to one file at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd: int | None = None
        self._path: Path | None = None
        self._good = 0  # end of the last complete, fsync'd line of the current file
        self.appended = 0
        self.quarantine = Quarantine(self.directory / "quarantine")

    @property
    def current(self) -> Path | None:
        return self._path

    def _open(self) -> int:
        if self._fd is None:
            name = f"spool-{time.time_ns():020d}-{os.getpid()}.jsonl"
            path = self.directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's name is durable too
            finally:
                os.close(dir_fd)
            self._fd, self._path, self._good = fd, path, 0
        return self._fd

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write and fsync; returns only when the rows would survive a crash of the machine."""
        self._write(b"".join(encode_line(r) for r in rows), len(rows))

    def append_encoded(self, bodies: Sequence[bytes]) -> None:
        """The same for rows already serialised as JSON objects (the writer's wire bodies)."""
        self._write(b"".join(encode_body(b) for b in bodies), len(bodies))

    def _write(self, data: bytes, count: int) -> None:
        fd = self._open()
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            self._abandon(fd)
            raise
        self._good += len(data)
        self.appended += count

    def _abandon(self, fd: int) -> None:
        """After a failed append: cut the file back to its last complete line and close it.

        A short write on a full disk leaves a fragment without a newline; the next append would
        otherwise glue its first line to it. If even the truncate fails, the fragment stays as
        the file's torn final line, which replay quarantines as never acknowledged."""
        try:
            os.ftruncate(fd, self._good)
            os.fsync(fd)
        except OSError as exc:
            log.error(
                "could not cut %s back to %d bytes after a failed append: %s",
                self._path,
                self._good,
                describe_os_error(exc),
            )
        self.rotate()

    def rotate(self) -> None:
        """Close the current file (and release its lock) so it can be replayed."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._path = None

    def pending(self) -> list[Path]:
        """Spool files in the order they were started, except the one being written."""
        files = sorted(self.directory.glob("spool-*.jsonl"))
        return [p for p in files if p != self._path]

    def orphaned(self, path: Path) -> bool:
        """True when no live process holds ``path`` (its writer exited or was killed)."""
        with self.claim(path) as free:
            return free

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[bool]:
        """Lock a file for replay; False when a live process still owns it."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def read(self, path: Path) -> Iterator[dict[str, Any]]:
        for entry in self.entries(path):
            yield entry.row

    def entries(self, path: Path) -> Iterator[SpoolEntry]:
        """The readable lines of ``path``; the others are quarantined (durably) on the way."""
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                row, why = _decode(line)
                if row is None:
                    self.quarantine.add(path.name, number, line, kind="unreadable", reason=why)
                    continue
                yield SpoolEntry(number, line, row)

    def lines(self) -> int:
        """Lines waiting in the spool files (the one being written included)."""
        total = 0
        for path in sorted(self.directory.glob("spool-*.jsonl")):
            with contextlib.suppress(OSError), path.open("rb") as handle:
                total += sum(1 for _ in handle)
        return total

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        self.rotate()
