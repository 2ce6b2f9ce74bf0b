"""Spool lines that could not be replayed, kept (never deleted) until an operator decides.

Two kinds of line end up here, each with the bytes as they were on disk, the spool file's name,
the line number and the reason:

- ``unreadable``: the line fails its CRC-32 or is not JSON (a disk or filesystem fault), or is a
  final line without its newline (a crash before the ``fsync``: never acknowledged, but kept so
  nothing unreplayed is ever silently gone);
- ``refused``: the line is intact but PostgreSQL refused to store it (the database's SQLSTATE
  and message are the reason), e.g. an organization that no longer exists. Replay of the rest of
  the spool continues.

Entries are appended, one JSON object per line, to ``<spool>/quarantine/quarantine.jsonl`` and
``fsync``'d before the spool file they came from is removed. ``carelog audit spool status``
lists them; ``carelog audit spool redrive`` inserts the refused ones again once the cause is
fixed (for example after the organization has been restored) and keeps what is still refused.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

log = logging.getLogger("carelog.audit.quarantine")

Kind = Literal["unreadable", "refused"]


@dataclass(frozen=True)
class Entry:
    file: str
    line: int
    kind: Kind
    reason: str
    data: bytes
    at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "reason": self.reason,
            "bytes": base64.b64encode(self.data).decode(),
            "at": self.at,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Entry:
        return cls(
            file=str(doc["file"]),
            line=int(doc["line"]),
            kind=doc["kind"],
            reason=str(doc["reason"]),
            data=base64.b64decode(doc["bytes"]),
            at=str(doc["at"]),
        )


class Quarantine:
    """The quarantine file of one spool directory, shared by every process using it."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "quarantine.jsonl"
        self._known: set[tuple[str, int]] = set()
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) the keys were read at

    def _keys(self) -> set[tuple[str, int]]:
        """Keys of the entries on disk; re-read when another process added some."""
        try:
            st = self.path.stat()
            version = (st.st_mtime_ns, st.st_size)
        except OSError:
            version = (0, 0)
        if version != self._seen:
            self._known = {(e.file, e.line) for e in self.entries()}
            self._seen = version
        return self._known

    def count(self) -> int:
        return len(self._keys())

    def entries(self) -> Iterator[Entry]:
        try:
            handle = self.path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            return
        with handle:
            for raw in handle:
                if raw.strip():
                    yield Entry.from_json(orjson.loads(raw))

    def add(self, file: str, line: int, data: bytes, *, kind: Kind, reason: str) -> bool:
        """Keep one line (durably: fsync'd before returning); False if it is already kept
        (a replay cut short and run again meets the same line)."""
        if (file, line) in self._keys():
            return False
        entry = Entry(file, line, kind, reason, data, datetime.now(UTC).isoformat())
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, orjson.dumps(entry.as_json()) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._keys()  # re-read: our own append changed the file
        level = logging.WARNING if reason.startswith("torn final line") else logging.CRITICAL
        log.log(
            level,
            "audit spool line quarantined: %s line %d (%s): %s; bytes kept in %s",
            file,
            line,
            kind,
            reason,
            self.path,
        )
        return True

    def replace(self, keep: list[Entry]) -> None:
        """Rewrite the file with ``keep`` only (after a re-drive), atomically."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(orjson.dumps(e.as_json()) + b"\n" for e in keep))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._seen = None
