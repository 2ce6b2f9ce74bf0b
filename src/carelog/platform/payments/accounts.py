"""Stripe Connect accounts: their flags decide whether an expert's payouts wait for an admin.

``account.updated`` carries the three flags Stripe uses to say an account can be paid
(``details_submitted``, ``charges_enabled``, ``payouts_enabled``) and ``requirements``. carelog
mirrors them on the expert's ``users`` row (global: the system role maintains the user mirror)
and, in every organization whose transfers name the account, lifts or sets the approval hold
of the payouts not yet made. A transfer is created without a hold only when the mirrored
flags already allow the payout.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from carelog.audit import log_audit_event
from carelog.db.unit import Unit
from carelog.platform.payments import queries

log = logging.getLogger("carelog.payments")
#: Event types whose object may concern several organizations (handled in each, one transaction).
MULTI_ORG = frozenset({"account.updated"})
#: The context of work that concerns no single organization (the global user mirror).
NO_ORG = uuid.UUID(int=0)


async def payouts_ready(session: Unit, account: str) -> bool:
    """Whether Stripe lets this Connect account receive payouts (as last reported)."""
    return bool(await session.scalar(queries.PAYOUTS_READY, {"account": account}))


async def account_known(session: Unit, account: str) -> bool:
    found = await session.scalar(queries.ACCOUNT_KNOWN, {"account": account})
    return bool(found)


def _flags(obj: Mapping[str, Any]) -> dict[str, bool]:
    requirements: Mapping[str, Any] = obj.get("requirements") or {}
    flags = {
        "details_submitted": bool(obj.get("details_submitted")),
        "charges_enabled": bool(obj.get("charges_enabled")),
        "payouts_enabled": bool(obj.get("payouts_enabled")),
    }
    flags["ready"] = all(flags.values()) and not requirements.get("disabled_reason")
    return flags


async def account_updated(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> None:
    account = str(obj["id"])
    flags = _flags(obj)
    expert = await session.scalar(
        queries.MIRROR_ACCOUNT_FLAGS,
        {
            "account": account,
            "details_submitted": flags["details_submitted"],
            "charges_enabled": flags["charges_enabled"],
            "payouts_enabled": flags["payouts_enabled"],
            "ready": flags["ready"],
        },
    )
    if org == NO_ORG:  # an expert with no payouts yet: only the user mirror changes
        log.info("connect account flags mirrored", extra={"account": account, **flags})
        return
    # Payouts not made yet and not held by an admin or by a dispute/refund.
    changed = (
        await session.execute(
            queries.SET_PAYOUT_HOLD,
            {"org_id": org, "account": account, "hold": not flags["ready"]},
        )
    ).all()
    await log_audit_event(
        "PAYOUT_ACCOUNT_UPDATED",
        "payment",
        account,
        {"new_values": flags},
        {
            "expert": expert,
            "transfers_released" if flags["ready"] else "transfers_held": len(changed),
            "disabled_reason": (obj.get("requirements") or {}).get("disabled_reason"),
        },
    )
