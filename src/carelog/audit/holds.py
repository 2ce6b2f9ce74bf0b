"""Retention policies and legal holds: what an organization keeps, and what it must not lose.

Owners and admins set both in their own name (row-level security checks ``set_by`` /
``placed_by``); the purge functions read them inside the database, so what is written here is
exactly what governs a purge.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from carelog.audit.api import log_audit_event
from carelog.audit.catalog import AuditCatalog
from carelog.audit.context import audit_context, snapshot
from carelog.audit.errors import AuditInputError
from carelog.db.unit import Unit

# HIPAA (45 CFR 164.316(b)(2)) asks for six years of documentation. Six calendar years always
# contain one or two 29 February, so 6 * 365 + 2 days never ends a day early. The same number
# is the fallback of app.audit_retention_days (migration 0010).
DEFAULT_RETENTION_DAYS = 6 * 365 + 2
ALL_CATEGORIES = "*"


async def _record(
    org_id: uuid.UUID,
    actor_id: str,
    action: str,
    resource_id: str,
    changes: dict[str, Any] | None,
    metadata: dict[str, Any],
) -> None:
    """Changing what the trail keeps is itself on the trail, in the same transaction as the
    change (the caller's unit), in the caller's context or else in the admin's own name."""
    ctx = snapshot()
    if ctx is not None and ctx.actor_id and ctx.org_id == org_id:
        await log_audit_event(action, "compliance", resource_id, changes, metadata)
        return
    with audit_context(actor_id=actor_id, org_id=org_id):
        await log_audit_event(action, "compliance", resource_id, changes, metadata)


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
    session: Unit, org_id: uuid.UUID, catalog: AuditCatalog
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
    session: Unit,
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
    before = await session.scalar(
        sa.text(
            "select retention_days from audit_retention_policies "
            "where org_id = :org and category = :category"
        ),
        {"org": org_id, "category": category},
    )
    await session.execute(
        sa.text(
            "insert into audit_retention_policies (org_id, category, retention_days, set_by) "
            "values (:org, :category, :days, :by) "
            "on conflict (org_id, category) do update "
            "set retention_days = excluded.retention_days, set_by = excluded.set_by"
        ),
        {"org": org_id, "category": category, "days": days, "by": set_by},
    )
    await _record(
        org_id,
        set_by,
        "AUDIT_RETENTION_POLICY_CHANGED",
        category,
        {"old_values": {"retention_days": before}, "new_values": {"retention_days": days}},
        {"category": category},
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
    session: Unit,
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
    await _record(
        org_id,
        placed_by,
        "AUDIT_LEGAL_HOLD_PLACED",
        str(hold_id),
        None,
        {"scope": "subject" if data_subject_id else "organization", "reason": reason.strip()},
    )
    return hold_id


async def release_hold(
    session: Unit, org_id: uuid.UUID, hold_id: uuid.UUID, released_by: str
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
    await _record(org_id, released_by, "AUDIT_LEGAL_HOLD_RELEASED", str(hold_id), None, {})


async def active_holds(session: Unit, org_id: uuid.UUID) -> list[LegalHold]:
    rows = await session.execute(
        sa.text(
            "select id, org_id, reason, data_subject_id, placed_by, created_at "
            "from audit_legal_holds where org_id = :org and released_at is null "
            "order by created_at, id"
        ),
        {"org": org_id},
    )
    return [LegalHold(*row) for row in rows.all()]
