"""Small helpers shared by the platform's domain packages (no domain logic lives here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit import AuditContext, audit_context
from carelog.audit.context import snapshot
from carelog.db.session import Scopes
from carelog.platform.errors import forbidden
from carelog.platform.services import services

EXPERT_ROLES = ("expert_top", "expert_community", "expert_lecturer")
SETUP_STEPS = ("profile", "availability", "events", "identity", "payment")


def get_scopes(request: Request) -> Scopes:
    """The app's session factories: anonymous and webhook paths open their own units."""
    return services(request).scopes


@contextmanager
def system_audit(actor: str, org_id: uuid.UUID) -> Iterator[AuditContext]:
    """An audit context for a system actor that keeps the request's address, agent and id."""
    ctx = snapshot()
    with audit_context(
        actor=actor,
        org_id=org_id,
        ip_address=ctx.ip_address if ctx else None,
        user_agent=ctx.user_agent if ctx else None,
        request_id=ctx.request_id if ctx else None,
    ) as bound:
        yield bound


async def require_expert(session: AsyncSession, user_id: str) -> None:
    """Experts only: the application role in ``users`` or an extra ``roles`` row decides."""
    found = await session.scalar(
        sa.text(
            "select exists(select 1 from users where workos_user_id = :u and role = any(:r))"
            " or exists(select 1 from roles where workos_user_id = :u and role = any(:r))"
        ),
        {"u": user_id, "r": list(EXPERT_ROLES)},
    )
    if not found:
        raise forbidden("only experts can do this", hint="apply to become an expert first")


async def mark_setup_step(
    session: AsyncSession, org_id: uuid.UUID, user_id: str, step: str
) -> None:
    """Tick one onboarding step (never un-ticks, as in the reference); no row, nothing to do."""
    if step not in SETUP_STEPS:
        raise ValueError(step)
    column = f"{step}_completed"  # from the fixed list above, never from a request
    await session.execute(
        sa.text(
            f"update expert_setup set {column} = true"
            f" where org_id = :o and workos_user_id = :u and not {column}"
        ),
        {"o": org_id, "u": user_id},
    )
