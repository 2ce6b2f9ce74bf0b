"""What a verification found: the counts of what was checked, and the problems, in order.

A :class:`Problem` names the event (with its ``seq``) or the checkpoint (by tree size) that is
wrong; :class:`VerifyReport` is what ``carelog audit verify`` prints and the admin API returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Problem", "VerifyReport", "problem_order"]


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong, naming the event (with its seq) or the checkpoint."""

    kind: str
    message: str
    event_id: str | None = None
    seq: int | None = None
    tree_size: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "event_id": self.event_id,
            "seq": self.seq,
            "tree_size": self.tree_size,
        }


@dataclass
class VerifyReport:
    org_id: str
    leaves: int = 0
    events_checked: int = 0
    purged: int = 0
    skipped_before_since: int = 0
    pending: int = 0
    checkpoints: int = 0
    signatures: int = 0
    links: int = 0
    roots: int = 0
    tree_size: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    # How the events were re-hashed (not part of the report's JSON: it says what was checked,
    # not how): processes of the bulk scan, and whether the reference pass took over.
    workers: int = 1
    reference_pass: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        checked = (
            f"org {self.org_id}: {self.leaves:,} leaves, {self.events_checked:,} events "
            f"re-hashed, {self.purged:,} purged, {self.checkpoints:,} checkpoints "
            f"({self.signatures:,} signatures, {self.links:,} links, {self.roots:,} roots), "
            f"{self.pending:,} pending sealing"
        )
        if self.ok:
            return f"OK   {checked}"
        return f"FAIL {checked}\n     first problem: {self.problems[0].message}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "ok": self.ok,
            "leaves": self.leaves,
            "events_checked": self.events_checked,
            "purged": self.purged,
            "skipped_before_since": self.skipped_before_since,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "signatures": self.signatures,
            "links": self.links,
            "roots": self.roots,
            "tree_size": self.tree_size,
            "seconds": round(self.seconds, 3),
            "problems": [p.to_json_dict() for p in self.problems],
        }


def problem_order(problem: Problem) -> tuple[int, int]:
    """Problems sorted by where they are in the tree, the rest after them."""
    if problem.seq is not None:
        return (0, problem.seq)
    if problem.tree_size is not None:
        return (0, max(0, problem.tree_size - 1))
    return (1, 0)
