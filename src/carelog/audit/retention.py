"""Retention of the audit log: policies, legal holds, and the purge that honours both.

The database owns the deletion: ``app.audit_purge`` (delete the scope org's expired events of
some actions, skipping held subjects, nothing under an org-wide hold) and
``app.audit_drop_expired_partitions`` (drop whole monthly partitions nobody may still need) are
the only paths that remove audit rows, and only the system role may call them, one organization
per transaction. This module decides *what* is expired (policies per org and action category),
shows it before anything happens (``plan_purge`` counts with the function's own predicate, so
a dry run reports exactly what the real run deletes), and records every purge as an audit event
once the purge has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit.api import audit_service, log_audit_event
from carelog.audit.catalog import AuditCatalog
from carelog.audit.context import audit_context
from carelog.audit.errors import AuditInputError
from carelog.db.session import Scopes

# HIPAA (45 CFR 164.316(b)(2)) asks for six years of documentation. Six calendar years always
# contain one or two 29 February, so 6 * 365 + 2 days never ends a day early.
DEFAULT_RETENTION_DAYS = 6 * 365 + 2
ALL_CATEGORIES = "*"
RETENTION_ACTOR = "system:retention"
PURGE_ACTION = "AUDIT_RETENTION_PURGED"

# The same predicate as app.audit_purge, so counts and deletions cannot disagree: the scope org's
# events of the given actions older than the cut-off, minus those of a subject under an active
# hold. Grouped by action so one statement serves every category.
_COUNT_EXPIRED = sa.text(
    """
    with p(action, cutoff) as (
        select * from unnest(cast(:actions as text[]), cast(:cutoffs as timestamptz[]))
    )
    select a.action,
           count(*) as expired,
           count(*) filter (where exists (
               select 1 from audit_legal_holds h
               where h.org_id = a.org_id and h.released_at is null
                 and h.data_subject_id = a.data_subject_id)) as held
    from audit_logs a join p on a.action = p.action and a.created_at < p.cutoff
    where a.org_id = :org
    group by a.action
    """
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


# --------------------------------------------------------------------------- policies


def _check_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise AuditInputError(
            f"retention must be a whole number of days, at least 1 (got {days!r})",
            field="retention_days",
            hint="a purge never touches events younger than one day",
        )
    return days


def _check_category(category: str, catalog: AuditCatalog) -> str:
    known = sorted(set(catalog.categories().values()))
    if category != ALL_CATEGORIES and category not in known:
        raise AuditInputError(
            f"unknown action category {category!r}",
            field="category",
            hint=f"use '*' (every category) or one of: {', '.join(known)}",
        )
    return category


async def effective_policies(
    session: AsyncSession, org_id: uuid.UUID, catalog: AuditCatalog
) -> dict[str, int]:
    """Days kept per category of the catalog, plus ``'*'``: the period of anything else.

    ``'*'`` is returned too because it is what governs actions missing from the catalog (old or
    foreign names) and hence the bound of whole-partition drops.
    """
    rows = await session.execute(
        sa.text(
            "select category, retention_days from audit_retention_policies where org_id = :org"
        ),
        {"org": org_id},
    )
    explicit: dict[str, int] = {str(c): int(d) for c, d in rows.all()}
    fallback = explicit.get(ALL_CATEGORIES, DEFAULT_RETENTION_DAYS)
    result = {
        cat: explicit.get(cat, fallback) for cat in sorted(set(catalog.categories().values()))
    }
    result[ALL_CATEGORIES] = fallback
    return result


async def set_policy(
    session: AsyncSession,
    org_id: uuid.UUID,
    category: str,
    days: int,
    set_by: str,
    *,
    catalog: AuditCatalog | None = None,
) -> None:
    """Insert or change one policy, in the admin's own name (RLS checks ``set_by``).

    Without a catalog only ``'*'`` is accepted: a category typo would otherwise create a policy
    that governs nothing while looking like it does.
    """
    _check_days(days)
    _check_category(category, catalog or AuditCatalog.build([], []))
    await session.execute(
        sa.text(
            "insert into audit_retention_policies (org_id, category, retention_days, set_by) "
            "values (:org, :category, :days, :by) "
            "on conflict (org_id, category) do update "
            "set retention_days = excluded.retention_days, set_by = excluded.set_by"
        ),
        {"org": org_id, "category": category, "days": days, "by": set_by},
    )


# --------------------------------------------------------------------------- legal holds


@dataclass(frozen=True)
class LegalHold:
    id: uuid.UUID
    org_id: uuid.UUID
    reason: str
    data_subject_id: str | None
    placed_by: str
    created_at: datetime

    def describe(self) -> str:
        scope = f"subject {self.data_subject_id}" if self.data_subject_id else "whole organization"
        return f"{scope}: {self.reason} (by {self.placed_by}, {self.created_at:%Y-%m-%d})"


async def place_hold(
    session: AsyncSession,
    org_id: uuid.UUID,
    reason: str,
    placed_by: str,
    data_subject_id: str | None = None,
) -> uuid.UUID:
    """Place a hold; without a subject it freezes the organization's whole trail."""
    if not reason or not reason.strip():
        raise AuditInputError("a legal hold needs a reason", field="reason")
    if data_subject_id is not None and not data_subject_id.strip():
        raise AuditInputError("an empty subject id would hold nothing", field="data_subject_id")
    result = await session.execute(
        sa.text(
            "insert into audit_legal_holds (org_id, reason, data_subject_id, placed_by) "
            "values (:org, :reason, :subject, :by) returning id"
        ),
        {"org": org_id, "reason": reason.strip(), "subject": data_subject_id, "by": placed_by},
    )
    hold_id: uuid.UUID = result.scalar_one()
    return hold_id


async def release_hold(
    session: AsyncSession, org_id: uuid.UUID, hold_id: uuid.UUID, released_by: str
) -> None:
    """Release, never delete: who lifted a hold and when stays part of the record."""
    result = await session.execute(
        sa.text(
            "update audit_legal_holds set released_at = now(), released_by = :by "
            "where id = :id and org_id = :org and released_at is null returning id"
        ),
        {"id": hold_id, "org": org_id, "by": released_by},
    )
    if result.scalar_one_or_none() is None:
        raise AuditInputError(
            f"no active legal hold {hold_id} in this organization", field="hold_id"
        )


async def active_holds(session: AsyncSession, org_id: uuid.UUID) -> list[LegalHold]:
    rows = await session.execute(
        sa.text(
            "select id, org_id, reason, data_subject_id, placed_by, created_at "
            "from audit_legal_holds where org_id = :org and released_at is null "
            "order by created_at, id"
        ),
        {"org": org_id},
    )
    return [LegalHold(*row) for row in rows.all()]


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


async def database_now(session: AsyncSession) -> datetime:
    """The server's clock: cut-offs are compared with ``now()`` inside the purge function."""
    value: datetime = (await session.execute(sa.text("select now()"))).scalar_one()
    return value


async def plan_purge(
    session: AsyncSession, org_id: uuid.UUID, catalog: AuditCatalog, now: datetime
) -> PurgePlan:
    """What a purge of one organization would delete, per category.

    ``session`` must be a ``system_scope`` of ``org_id``: only the system role may read an
    organization's whole trail without being one of its admins.
    """
    policies = await effective_policies(session, org_id, catalog)
    holds = tuple(await active_holds(session, org_id))
    by_category: dict[str, list[str]] = {}
    for action, category in sorted(catalog.categories().items()):
        by_category.setdefault(category, []).append(action)
    cutoffs = {cat: now - timedelta(days=policies[cat]) for cat in by_category}
    actions = [a for cat in sorted(by_category) for a in by_category[cat]]
    counts: dict[str, tuple[int, int]] = {}
    if actions:
        rows = await session.execute(
            _COUNT_EXPIRED,
            {
                "org": org_id,
                "actions": actions,
                "cutoffs": [cutoffs[catalog.action(a).category] for a in actions],
            },
        )
        counts = {str(a): (int(e), int(h)) for a, e, h in rows.all()}
    org_hold = any(h.data_subject_id is None for h in holds)
    plans = []
    for cat in sorted(by_category):
        expired = sum(counts.get(a, (0, 0))[0] for a in by_category[cat])
        held = sum(counts.get(a, (0, 0))[1] for a in by_category[cat])
        plans.append(
            CategoryPlan(
                category=cat,
                retention_days=policies[cat],
                cutoff=cutoffs[cat],
                actions=tuple(by_category[cat]),
                expired=expired,
                purgeable=0 if org_hold else expired - held,
            )
        )
    return PurgePlan(org_id, now, tuple(plans), policies[ALL_CATEGORIES], holds)


async def expired_partitions(session: AsyncSession, before: datetime) -> list[str]:
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
    with audit_context(actor=RETENTION_ACTOR, org_id=org_id):
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

    The system role sees one organization at a time and cannot list them, so the caller passes
    the organizations (the CLI reads them through the admin connection). ``every_org`` says that
    ``orgs`` is *all* of them: only then are whole partitions dropped, because a partition holds
    every organization's rows and its bound must be older than every organization's cut-off.

    Rows are deleted per org and category first, each org in its own transaction, so every org's
    audit event states exactly how many of its rows went; the partition drop afterwards frees the
    emptied months (and anything the catalog no longer names) without leaving dead tuples. The
    ``AUDIT_RETENTION_PURGED`` events are written only after the deletions committed: a rolled
    back purge must not be on record as done. They are fresh, and the purge refuses cut-offs
    younger than one day, so a purge can never delete its own record.
    """
    if not dry_run and emit is None:
        audit_service()  # not configured: fail now, before a purge nobody could record
    emit_fn = emit or _default_emit
    outcomes: list[OrgRetention] = []
    for org in orgs:
        async with scopes.system_scope(RETENTION_ACTOR, org) as session:
            at = now or await database_now(session)
            plan = await plan_purge(session, org, catalog, at)
            deleted: dict[str, int] = {}
            if not dry_run:
                for cat in plan.categories:
                    if cat.expired == 0:
                        continue
                    n = await session.scalar(
                        sa.text("select app.audit_purge(cast(:actions as text[]), :before)"),
                        {"actions": list(cat.actions), "before": cat.cutoff},
                    )
                    deleted[cat.category] = int(n or 0)
        outcome = OrgRetention(plan, deleted)
        outcomes.append(outcome)
        if not dry_run:  # committed: record it now, so a later org's failure cannot hide it
            for metadata in _purge_records(outcome):
                await emit_fn(org, metadata)

    partition_cutoff: datetime | None = None
    partitions: tuple[str, ...] = ()
    if every_org and outcomes:
        partition_cutoff = min(o.plan.oldest_cutoff for o in outcomes)
        async with scopes.system_scope(RETENTION_ACTOR, outcomes[0].plan.org_id) as session:
            if dry_run:
                partitions = tuple(await expired_partitions(session, partition_cutoff))
            else:
                dropped = await session.scalar(
                    sa.text("select app.audit_drop_expired_partitions(:before)"),
                    {"before": partition_cutoff},
                )
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
    "release_hold",
    "set_policy",
]
