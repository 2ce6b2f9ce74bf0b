"""Small helpers shared by the platform's domain packages (no domain logic lives here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import sqlalchemy as sa
from fastapi import Request

from carelog.audit import AuditContext, audit_context
from carelog.audit.context import snapshot
from carelog.db.session import Scopes
from carelog.db.unit import Unit
from carelog.platform.errors import forbidden
from carelog.platform.services import services

EXPERT_ROLES = ("expert_top", "expert_community", "expert_lecturer")
SETUP_STEPS = ("profile", "availability", "events", "identity", "payment")

#: An expert is a ``users`` row with an expert role, or an extra ``roles`` row granting one.
IS_EXPERT = sa.text(
    "select exists(select 1 from users where workos_user_id = :user_id and role = any(:roles))"
    " or exists(select 1 from roles where workos_user_id = :user_id and role = any(:roles))"
)
#: One statement per onboarding step: a column name cannot be a bind parameter, so each step's
#: statement is spelled out from the fixed list above, never from a request. ``and not`` keeps
#: a ticked step from being rewritten (a step is never un-ticked).
MARK_SETUP_STEP: Mapping[str, sa.TextClause] = {
    step: sa.text(
        f"update expert_setup set {step}_completed = true"
        f" where org_id = :org_id and workos_user_id = :user_id and not {step}_completed"
    )
    for step in SETUP_STEPS
}


async def get_scopes(request: Request) -> Scopes:
    """The app's session factories: anonymous and webhook paths open their own units."""
    return services(request).scopes


@contextmanager
def system_audit(actor_id: str, org_id: uuid.UUID) -> Iterator[AuditContext]:
    """An audit context for a system actor that keeps the request's address, agent and id."""
    ctx = snapshot()
    with audit_context(
        actor_id=actor_id,
        org_id=org_id,
        ip_address=ctx.ip_address if ctx else None,
        user_agent=ctx.user_agent if ctx else None,
        request_id=ctx.request_id if ctx else None,
    ) as bound:
        yield bound


async def require_expert(session: Unit, user_id: str) -> None:
    """Experts only: the application role in ``users`` or an extra ``roles`` row decides."""
    found = await session.scalar(IS_EXPERT, {"user_id": user_id, "roles": list(EXPERT_ROLES)})
    if not found:
        raise forbidden("only experts can do this", hint="apply to become an expert first")


async def mark_setup_step(session: Unit, org_id: uuid.UUID, user_id: str, step: str) -> None:
    """Tick one onboarding step (never un-ticks, as in the reference); no row, nothing to do."""
    statement = MARK_SETUP_STEP.get(step)
    if statement is None:
        raise ValueError(step)
    await session.execute(statement, {"org_id": org_id, "user_id": user_id})
