"""Compliance and per-patient access reports, computed by PostgreSQL.

A compliance report over a year of a busy clinic covers millions of events; loading them into
Python to count them would take minutes and gigabytes. Every number here is an aggregate the
database computes in one pass over the org's date range (``GROUP BY GROUPING SETS`` and
``FILTER`` aggregates); Python only receives the few result rows.

The catalog (action → category, which actions touch PHI) is the platform's data, not the
database's, so it travels with the query as arrays (``unnest(:actions, :categories)``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from carelog.audit.catalog import AuditCatalog
from carelog.audit.errors import AuditInputError
from carelog.audit.filters import AuditFilters
from carelog.audit.query import AuditRecord, conditions, stream_records
from carelog.db.schema import AuditLog
from carelog.db.unit import Unit

UNCATEGORIZED = "uncategorized"
_TEXTS = ARRAY(sa.Text)


@dataclass(frozen=True)
class ComplianceReport:
    org_id: uuid.UUID
    start: datetime
    end: datetime
    total: int
    distinct_actors: int
    phi_accesses: int
    phi_subjects: int
    denied: int
    failures: int
    by_category: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_day: dict[date, int] = field(default_factory=dict)
    top_actors: list[tuple[str, int]] = field(default_factory=list)


def _events(org_id: uuid.UUID, filters: AuditFilters, catalog: AuditCatalog) -> sa.Subquery:
    """The org's events in range with their category and UTC day (a derived table, not rows)."""
    categories = catalog.categories()
    names = list(categories)
    cat = (
        sa.func.unnest(
            sa.literal(names, _TEXTS), sa.literal([categories[n] for n in names], _TEXTS)
        )
        .table_valued("action", "category")
        .render_derived(name="cat")
    )
    table = cast(sa.Table, AuditLog.__table__)
    log = table.c
    phi = catalog.phi_actions()
    return (
        sa.select(
            log.workos_user_id.label("actor"),
            log.outcome,
            log.data_subject_id,
            sa.func.coalesce(cat.c.category, UNCATEGORIZED).label("category"),
            sa.cast(sa.func.timezone("UTC", log.created_at), sa.Date).label("day"),
            (log.action == sa.func.any(sa.literal(phi, _TEXTS))).label("phi"),
        )
        .select_from(table.outerjoin(cat, cat.c.action == log.action))
        .where(*conditions(org_id, filters))
        .subquery("ev")
    )


async def compliance_report(
    session: Unit,
    org_id: uuid.UUID,
    start: datetime,
    end: datetime,
    catalog: AuditCatalog,
    *,
    top_n: int = 10,
) -> ComplianceReport:
    """Counts for an auditor: totals, by category/outcome/day, top actors, PHI and denials."""
    if start is None or end is None:
        raise AuditInputError("a report needs both ends of its period", field="start")
    if not 1 <= top_n <= 1000:
        raise AuditInputError(f"{top_n} is out of range", field="top_n", hint="1..1000")
    ev = _events(org_id, AuditFilters(start=start, end=end), catalog)
    totals = (await session.execute(_totals(ev))).one()
    report = ComplianceReport(
        org_id=org_id,
        start=start,
        end=end,
        total=totals.total,
        distinct_actors=totals.distinct_actors,
        phi_accesses=totals.phi_accesses,
        phi_subjects=totals.phi_subjects,
        denied=totals.denied,
        failures=totals.failures,
    )
    for row in await session.execute(_breakdown(ev)):
        if not row.g_category:
            report.by_category[row.category] = row.n
        elif not row.g_outcome:
            report.by_outcome[row.outcome] = row.n
        elif not row.g_day:
            report.by_day[row.day] = row.n
    top = sa.select(ev.c.actor, sa.func.count().label("n")).group_by(ev.c.actor)
    top = top.order_by(sa.desc("n"), ev.c.actor).limit(top_n)
    report.top_actors.extend((r.actor, r.n) for r in await session.execute(top))
    return report


def _totals(ev: sa.Subquery) -> sa.Select[int, int, int, int, int, int]:
    def count_where(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.count().filter(cond)

    return sa.select(
        sa.func.count().label("total"),
        sa.func.count(sa.distinct(ev.c.actor)).label("distinct_actors"),
        count_where(ev.c.phi).label("phi_accesses"),
        sa.func.count(sa.distinct(ev.c.data_subject_id)).filter(ev.c.phi).label("phi_subjects"),
        count_where(ev.c.outcome == "denied").label("denied"),
        count_where(ev.c.outcome == "failure").label("failures"),
    )


def _breakdown(ev: sa.Subquery) -> sa.Select[Any]:
    """One scan, three breakdowns: GROUPING() tells which set a row belongs to."""
    keys = (ev.c.category, ev.c.outcome, ev.c.day)
    return sa.select(
        sa.func.grouping(ev.c.category).label("g_category"),
        sa.func.grouping(ev.c.outcome).label("g_outcome"),
        sa.func.grouping(ev.c.day).label("g_day"),
        *keys,
        sa.func.count().label("n"),
    ).group_by(sa.func.grouping_sets(*(sa.tuple_(k) for k in keys)))


# --------------------------------------------------------------------------- access report


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access to a data subject's records: who, when, what, from where, with what result."""

    at: datetime
    actor_id: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    event_id: uuid.UUID

    @classmethod
    def of(cls, record: AuditRecord) -> AccessEntry:
        return cls(
            at=record.created_at,
            actor_id=record.actor_id,
            actor_type=record.actor_type,
            action=record.action,
            resource_type=record.resource_type,
            resource_id=record.resource_id,
            outcome=record.outcome,
            ip_address=record.ip_address,
            user_agent=record.user_agent,
            request_id=record.request_id,
            event_id=record.id,
        )


async def stream_access_report(
    session: Unit,
    org_id: uuid.UUID,
    data_subject_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> AsyncGenerator[AccessEntry, None]:
    """Every event naming the subject, newest first, streamed (a patient's history is long)."""
    filters = AuditFilters(data_subject_id=data_subject_id, start=start, end=end)
    async for batch in stream_records(session, org_id, filters):
        for record in batch:
            yield AccessEntry.of(record)


async def access_report(
    session: Unit,
    org_id: uuid.UUID,
    data_subject_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    limit: int | None = None,
) -> list[AccessEntry]:
    """The subject's access history as a list (``limit`` caps it; None means all of it)."""
    entries: list[AccessEntry] = []
    stream = stream_access_report(session, org_id, data_subject_id, start, end)
    async with aclosing(stream):  # stopping early must close the server-side cursor now
        async for entry in stream:
            entries.append(entry)
            if limit is not None and len(entries) >= limit:
                break
    return entries
