"""Verification of one organisation's log from the database: one pass, on one or more workers.

:func:`verify_org` checks every checkpoint's signature, stored hash and ``previous_hash`` link,
every checkpoint root (recomputed from the stored leaf hashes), contiguous sequence numbers,
the sealer's state, and every event's leaf hash recomputed from the stored row: no event
missing, altered, duplicated, out of order, or unsealed beyond the sealing window. Purged
events are counted, not missing. The report says what was checked and, on failure, the first
bad event or checkpoint and what is wrong.

The events are re-hashed by the bulk scan (:mod:`carelog.audit.integrity.scan`); ``workers``
says on how many processes. When the scan sees anything unexpected it hands over to the
reference pass (:mod:`carelog.audit.integrity.diagnose`), which walks the log seal by seal and
names the fault. Proofs live in :mod:`carelog.audit.integrity.proofs`.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from carelog.audit.integrity.canonical import format_timestamp
from carelog.audit.integrity.chain import (
    CHECKPOINTS,
    STATE,
    check_chain,
    finish,
    roots_from_leaves,
)
from carelog.audit.integrity.checkpoint import VerifyingKeyring
from carelog.audit.integrity.diagnose import reference_pass, unsealed_problem
from carelog.audit.integrity.report import Problem, VerifyReport
from carelog.audit.integrity.scan import choose_workers, parallel_available, scan, stored_leaves
from carelog.db.unit import Unit

__all__ = ["DEFAULT_SEALING_WINDOW", "Problem", "VerifyReport", "verify_org"]

DEFAULT_SEALING_WINDOW = timedelta(minutes=5)


async def verify_org(
    session: Unit,
    org_id: uuid.UUID,
    keyring: VerifyingKeyring,
    *,
    sealing_window: timedelta = DEFAULT_SEALING_WINDOW,
    since: datetime | None = None,
    now: datetime | None = None,
    max_problems: int = 20,
    workers: int | None = None,
) -> VerifyReport:
    """Recompute one organization's log inside ``session`` (system role, or an org admin).

    ``since`` re-hashes only events created from then on; every root, signature and link is
    still checked, from the stored leaf hashes of older events. ``workers``: processes that
    re-hash at once (``None``: one per core for a large log when the process may fork, else
    one; the caller's connection always does the single-worker scan).
    """
    started = time.perf_counter()
    report = VerifyReport(str(org_id))
    now = now or datetime.now(UTC)
    cutoff = format_timestamp(now - sealing_window)
    since_text = None if since is None else format_timestamp(since)

    rows = (await session.execute(CHECKPOINTS, {"org": org_id})).all()
    chain = check_chain(report, org_id, rows, keyring)
    sizes = [int(r[1]) for r in rows]
    roots = [bytes(r[2]) for r in rows]
    state = (await session.execute(STATE, {"org": org_id})).first()
    horizon = 0 if state is None else int(state[2])

    conn = session.driver
    may_fork = workers != 1 and parallel_available()
    stored = await stored_leaves(conn, org_id, since_text, export=may_fork)
    result = None
    if stored is not None:
        early = VerifyReport(report.org_id)  # roots from the stored leaves, while hashing

        def check_roots() -> None:
            roots_from_leaves(early, stored.leaves, sizes, roots)

        n_workers = choose_workers(workers, stored.n_expected)
        result = await scan(
            conn, org_id, stored, workers=n_workers, since=since_text, meanwhile=check_roots
        )
    if stored is not None and result is not None:
        report.workers = result.workers
        report.purged, report.skipped_before_since = stored.purged, stored.skipped
        report.events_checked = result.events_checked
        report.leaves, report.tree_size, report.roots = early.leaves, early.tree_size, early.roots
        report.problems.extend(early.problems)
        for key in result.tail:
            problem = await unsealed_problem(conn, org_id, key, horizon, cutoff, report.leaves)
            if problem is None:
                report.pending += 1
            elif len(report.problems) < max_problems:
                report.problems.append(problem)
    else:
        report.reference_pass = True
        await reference_pass(
            report,
            conn,
            org_id,
            sizes,
            roots,
            since=since_text,
            horizon=horizon,
            cutoff=cutoff,
            max_problems=max_problems,
        )
    finish(report, sizes, roots, state, chain, max_problems)
    report.seconds = time.perf_counter() - started
    return report
