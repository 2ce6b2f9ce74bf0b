"""Retention of the audit log: the purge that honours policies and legal holds.

The database owns the decision and the deletion. ``app.audit_purge_expired()`` deletes the scope
organization's events that are past their category's retention policy (``'*'`` otherwise, six
years by default) and under no active legal hold, flags their Merkle leaves and writes an
``audit_purges`` row naming what went; ``app.audit_drop_expired_partitions()`` drops whole
months only when every event in them is expired for its own organization. Neither takes a
cut-off from the caller, and only the maintenance role may run them (migration 0010): a request
or webhook role cannot delete a single event. ``app.audit_purge_plan()`` counts with the same
predicate, so a dry run reports exactly what the real run deletes. This module registers the
catalog's categories with the database, shows the plan, runs the purge and records each one as
an audit event once it has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from carelog.audit.api import audit_service, log_audit_event
from carelog.audit.catalog import AuditCatalog
from carelog.audit.context import audit_context
from carelog.audit.holds import (
    ALL_CATEGORIES,
    DEFAULT_RETENTION_DAYS,
    LegalHold,
    active_holds,
    effective_policies,
    place_hold,
    release_hold,
    set_policy,
)
from carelog.db.session import Scopes
from carelog.db.unit import Unit

RETENTION_ACTOR = "system:retention"
PURGE_ACTION = "AUDIT_RETENTION_PURGED"

_PLAN = sa.text("select action, expired, purgeable from app.audit_purge_plan()")
_PURGE = sa.text("select app.audit_purge_expired()")
_DROP_PARTITIONS = sa.text("select app.audit_drop_expired_partitions()")
_REMOVED = sa.text(
    "select removed from audit_purges where org_id = :org and kind = 'events' "
    "and created_at = now()"
)
_REGISTER = sa.text(
    "select app.audit_register_actions(cast(:actions as text[]), cast(:categories as text[]))"
)
# Monthly partitions whose upper bound is at or before a timestamp (the same parsing of the
# bound as app.audit_drop_expired_partitions). pg_catalog is readable by every role.
_EXPIRED_PARTITIONS = sa.text(
    """
    select c.relname
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.audit_logs'::regclass and c.relname <> 'audit_logs_default'
      and substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \\(''([^'']+)''\\)')::timestamptz
          <= :before
    order by c.relname
    """
)

EmitFn = Callable[[uuid.UUID, Mapping[str, Any]], Awaitable[None]]


async def register_categories(session: Unit, catalog: AuditCatalog) -> int:
    """Tell the database each new action's category (existing actions keep theirs)."""
    pairs = sorted(catalog.categories().items())
    if not pairs:
        return 0
    added = await session.scalar(
        _REGISTER, {"actions": [a for a, _ in pairs], "categories": [c for _, c in pairs]}
    )
    return int(added or 0)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class CategoryPlan:
    category: str
    retention_days: int
    cutoff: datetime
    actions: tuple[str, ...]
    expired: int
    """Events past the cut-off, held or not."""
    purgeable: int
    """What ``app.audit_purge`` deletes: expired minus held (0 under an org-wide hold)."""

    @property
    def held(self) -> int:
        return self.expired - self.purgeable


@dataclass(frozen=True)
class PurgePlan:
    org_id: uuid.UUID
    now: datetime
    categories: tuple[CategoryPlan, ...]
    fallback_days: int
    holds: tuple[LegalHold, ...]

    @property
    def org_hold(self) -> bool:
        return any(h.data_subject_id is None for h in self.holds)

    @property
    def purgeable(self) -> int:
        return sum(c.purgeable for c in self.categories)

    @property
    def expired(self) -> int:
        return sum(c.expired for c in self.categories)

    @property
    def oldest_cutoff(self) -> datetime:
        """The bound of partition drops: nothing older than this may be needed by this org."""
        fallback = self.now - timedelta(days=self.fallback_days)
        return min([fallback, *(c.cutoff for c in self.categories)])

    def summary(self) -> str:
        parts = [
            f"{c.category}: {c.purgeable} of {c.expired} expired before {c.cutoff:%Y-%m-%d}"
            for c in self.categories
            if c.expired
        ]
        held = " (organization-wide legal hold: nothing is purged)" if self.org_hold else ""
        body = "; ".join(parts) if parts else "nothing expired"
        return f"org {self.org_id}: {body}{held}"


async def database_now(session: Unit) -> datetime:
    """The server's clock: cut-offs are compared with ``now()`` inside the purge function."""
    value: datetime = (await session.execute(sa.text("select now()"))).scalar_one()
    return value


async def plan_purge(
    session: Unit, org_id: uuid.UUID, catalog: AuditCatalog, now: datetime
) -> PurgePlan:
    """What a purge of one organization would delete now, per category.

    ``session`` must be a ``maintenance_scope`` of ``org_id``. The counts come from
    ``app.audit_purge_plan()`` (the purge's own predicate, the database's clock); ``now`` and
    the policies only label the categories with their cut-offs. Actions the catalog does not
    name are governed by ``'*'`` and reported under it.
    """
    policies = await effective_policies(session, org_id, catalog)
    holds = tuple(await active_holds(session, org_id))
    by_category: dict[str, list[str]] = {}
    for action, category in sorted(catalog.categories().items()):
        by_category.setdefault(category, []).append(action)
    counts = {str(a): (int(e), int(p)) for a, e, p in (await session.execute(_PLAN)).all()}
    known = {a for actions in by_category.values() for a in actions}
    foreign = sorted(a for a in counts if a not in known)
    if foreign:
        by_category.setdefault(ALL_CATEGORIES, []).extend(foreign)
    plans = []
    for cat in sorted(by_category):
        plans.append(
            CategoryPlan(
                category=cat,
                retention_days=policies[cat],
                cutoff=now - timedelta(days=policies[cat]),
                actions=tuple(by_category[cat]),
                expired=sum(counts.get(a, (0, 0))[0] for a in by_category[cat]),
                purgeable=sum(counts.get(a, (0, 0))[1] for a in by_category[cat]),
            )
        )
    return PurgePlan(org_id, now, tuple(plans), policies[ALL_CATEGORIES], holds)


async def expired_partitions(session: Unit, before: datetime) -> list[str]:
    """Monthly partitions entirely older than ``before`` (candidates; holds may keep some)."""
    rows = await session.execute(_EXPIRED_PARTITIONS, {"before": before})
    return [str(name) for name in rows.scalars()]


# --------------------------------------------------------------------------- apply


@dataclass(frozen=True)
class OrgRetention:
    plan: PurgePlan
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted per category (empty on a dry run)."""

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())


@dataclass(frozen=True)
class RetentionResult:
    dry_run: bool
    now: datetime
    orgs: tuple[OrgRetention, ...]
    partition_cutoff: datetime | None
    """Bound for whole-partition drops; None when the run did not cover every organization."""
    partitions: tuple[str, ...]
    """Dropped partitions, or on a dry run the candidates (a hold may still keep some)."""


async def _default_emit(org_id: uuid.UUID, metadata: Mapping[str, Any]) -> None:
    with audit_context(actor_id=RETENTION_ACTOR, org_id=org_id):
        await log_audit_event(PURGE_ACTION, "audit_log", None, None, dict(metadata))


async def apply_retention(
    scopes: Scopes,
    catalog: AuditCatalog,
    *,
    orgs: Sequence[uuid.UUID],
    dry_run: bool,
    now: datetime | None = None,
    every_org: bool = False,
    emit: EmitFn | None = None,
) -> RetentionResult:
    """Purge (or, on a dry run, only count) the expired events of ``orgs``.

    The maintenance role sees one organization at a time, so the caller passes the
    organizations (the CLI reads them through the admin connection). ``every_org`` says that
    ``orgs`` is *all* of them: only then are whole partitions offered for dropping (the
    database still drops only months in which every event is expired for its own org).

    Each org is purged in its own transaction, which also writes its ``audit_purges`` row; the
    ``AUDIT_RETENTION_PURGED`` events are written only after the deletion committed (a rolled
    back purge must not be on record as done). They are fresh, and nothing younger than a day
    is ever eligible, so a purge can never delete its own record.
    """
    if not dry_run and emit is None:
        audit_service()  # not configured: fail now, before a purge nobody could record
    emit_fn = emit or _default_emit
    outcomes: list[OrgRetention] = []
    for index, org in enumerate(orgs):
        async with scopes.maintenance_scope(RETENTION_ACTOR, org) as session:
            if index == 0:
                await register_categories(session, catalog)
            at = now or await database_now(session)
            plan = await plan_purge(session, org, catalog, at)
            deleted: dict[str, int] = {}
            if not dry_run and plan.expired:
                await session.scalar(_PURGE)
                removed: dict[str, int] = {}
                for row in (await session.execute(_REMOVED, {"org": org})).scalars():
                    for action, n in dict(row).items():
                        removed[action] = removed.get(action, 0) + int(n)
                for cat in plan.categories:
                    n = sum(removed.get(a, 0) for a in cat.actions)
                    if n:
                        deleted[cat.category] = n
        outcome = OrgRetention(plan, deleted)
        outcomes.append(outcome)
        if not dry_run:  # committed: record it now, so a later org's failure cannot hide it
            for metadata in _purge_records(outcome):
                await emit_fn(org, metadata)

    partition_cutoff: datetime | None = None
    partitions: tuple[str, ...] = ()
    if every_org and outcomes:
        partition_cutoff = min(o.plan.oldest_cutoff for o in outcomes)
        async with scopes.maintenance_scope(RETENTION_ACTOR, outcomes[0].plan.org_id) as session:
            if dry_run:
                partitions = tuple(await expired_partitions(session, partition_cutoff))
            else:
                dropped = await session.scalar(_DROP_PARTITIONS)
                partitions = tuple(dropped or ())
        if partitions and not dry_run:
            await _record_drop(outcomes, partition_cutoff, partitions, emit_fn)

    run_at = outcomes[0].plan.now if outcomes else (now or datetime.now().astimezone())
    return RetentionResult(dry_run, run_at, tuple(outcomes), partition_cutoff, partitions)


def _purge_records(outcome: OrgRetention) -> list[dict[str, Any]]:
    """One event per category that lost rows, or one saying that holds kept every expired row:
    an attempt that deleted nothing is still evidence that retention ran and was blocked."""
    plan = outcome.plan
    records: list[dict[str, Any]] = [
        {
            "category": cat.category,
            "cutoff": cat.cutoff.isoformat(),
            "retention_days": cat.retention_days,
            "deleted": outcome.deleted[cat.category],
            "held": cat.held,
            "dropped_partitions": [],
        }
        for cat in plan.categories
        if outcome.deleted.get(cat.category, 0) > 0
    ]
    if not records and plan.expired > 0:
        records.append(
            {
                "category": ALL_CATEGORIES,
                "cutoff": plan.oldest_cutoff.isoformat(),
                "deleted": 0,
                "held": plan.expired,
                "legal_holds": [str(h.id) for h in plan.holds],
                "dropped_partitions": [],
            }
        )
    return records


async def _record_drop(
    outcomes: Sequence[OrgRetention],
    cutoff: datetime,
    partitions: Sequence[str],
    emit: EmitFn,
) -> None:
    """A dropped month held rows of any organization, and each org reads only its own trail, so
    every org that had expired events gets the record (or, if none had, the org that ran it)."""
    targets = [o.plan.org_id for o in outcomes if o.plan.expired > 0] or [outcomes[0].plan.org_id]
    for org in targets:
        await emit(
            org,
            {
                "category": ALL_CATEGORIES,
                "cutoff": cutoff.isoformat(),
                "deleted": 0,
                "dropped_partitions": list(partitions),
            },
        )


__all__ = [
    "ALL_CATEGORIES",
    "DEFAULT_RETENTION_DAYS",
    "CategoryPlan",
    "LegalHold",
    "OrgRetention",
    "PurgePlan",
    "RetentionResult",
    "active_holds",
    "apply_retention",
    "effective_policies",
    "expired_partitions",
    "place_hold",
    "plan_purge",
    "register_categories",
    "release_hold",
    "set_policy",
]
