"""The local append-only spool: where events go while PostgreSQL cannot take them.

An event is acknowledged only once it is durable somewhere. When the database is unreachable
(or slower than the group-commit deadline) the writer appends the batch here and ``fsync``s the
file before acknowledging. Each line carries a CRC-32 of its JSON, so a line torn by a crash
(never acknowledged: the fsync had not returned) is recognised and skipped on replay.

Each process appends to a file of its own and holds an exclusive ``flock`` on it, so another
process never replays a file that is still being written; files left by a crashed process are
unlocked and get replayed by whichever writer starts next. Replays insert with
``ON CONFLICT DO NOTHING`` on the event's primary key, so replaying twice stores once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("carelog.audit.spool")


def encode_body(body: bytes) -> bytes:
    """One spool line: the CRC-32 of an already serialised JSON object, the object, a newline."""
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def encode_line(row: dict[str, Any]) -> bytes:
    return encode_body(orjson.dumps(row))


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The row, or None for a torn or corrupted line."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        row: dict[str, Any] = orjson.loads(body)
    except ValueError:
        return None
    return row


class Spool:
    """A directory of spool files; this process appends to one file at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd: int | None = None
        self._path: Path | None = None
        self.appended = 0

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
            self._fd, self._path = fd, path
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
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        self.appended += count

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

    @staticmethod
    def read(path: Path) -> Iterator[dict[str, Any]]:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                row = decode_line(line)
                if row is None:
                    log.warning(
                        "skipping torn spool line", extra={"file": path.name, "line": number}
                    )
                    continue
                yield row

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        self.rotate()
