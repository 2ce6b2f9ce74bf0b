"""Processing one verified Stripe event exactly once, and auditing forged ones.

Idempotency: the claim (``stripe_webhook_events``), the handler's changes, its audit rows and
the final ``processed`` mark are ONE transaction (an event that concerns several organizations,
a Connect account serving experts of two of them, switches the transaction-local organization
between them). A redelivery finds the event processed and
changes and logs nothing; a concurrent duplicate blocks on the primary key until the first
commits, then does the same. If the handler fails, everything rolls back, the event is recorded
as ``failed`` (attempts, error class) in a separate transaction and the webhook answers 500, so
Stripe delivers it again and the retry runs the handler from scratch. The legacy platform
acknowledged failures with 200, so Stripe never retried them.

Invalid signatures: which organization should the WEBHOOK_SIGNATURE_INVALID event go to? None
is known for sure, since nothing in the body can be trusted. We record it in an organization
only when the unverified body names one (``metadata.org_id``) AND that organization really has
a meeting with the payment intent the body names: then the forgery targets that tenant's data
and its admins should see it. Otherwise there is no tenant to tell (a scan, a misconfigured
secret), so it is a structured warning log line instead; inventing a "platform" organization
would put rows no tenant can read into a tenant-scoped table.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from carelog.audit import log_audit_event
from carelog.db.session import Scopes
from carelog.platform.common import system_audit
from carelog.platform.errors import ApiError
from carelog.platform.payments import queries
from carelog.platform.payments.accounts import MULTI_ORG, NO_ORG, account_known
from carelog.platform.payments.checkout_metadata import CheckoutMetadataError
from carelog.platform.payments.handlers import HANDLERS, NotYetKnownError
from carelog.platform.payments.orgs import (
    org_in_metadata,
    payment_intent_of,
    references,
    resolve_orgs,
)

ACTOR = "system:stripe-webhook"
log = logging.getLogger("carelog.payments")


class OrganizationUnknownError(Exception):
    """A verified event whose object carelog cannot place in any organization (yet)."""


async def process(scopes: Scopes, event: Mapping[str, Any]) -> str:
    """Handle a verified event; returns processed, duplicate or ignored (raises on failure).

    An event of a handled type whose organization cannot be resolved is NOT acknowledged: it
    is recorded as failed (without an organization) and answered with a 500 so Stripe delivers
    it again, by which time the payment it refers to may have been recorded.
    """
    event_id, event_type = str(event["id"]), str(event["type"])
    handler = HANDLERS.get(event_type)
    if handler is None:
        return "ignored"
    obj: Mapping[str, Any] = event["data"]["object"]
    async with scopes.system_scope(ACTOR, NO_ORG) as lookup:
        orgs = await resolve_orgs(lookup, event)
        if not orgs and event_type in MULTI_ORG and await account_known(lookup, str(obj["id"])):
            orgs = [NO_ORG]  # a known expert without payouts yet: the user mirror only
    if not orgs or (len(orgs) > 1 and event_type not in MULTI_ORG):
        problem = "no organization" if not orgs else f"{len(orgs)} organizations"
        exc = OrganizationUnknownError(f"{problem} known for {', '.join(references(event))}")
        await _record_failure(scopes, None, event_id, event_type, exc)
        raise ApiError(
            "the event names no payment carelog knows; Stripe will deliver it again",
            status_code=500,
            code="WEBHOOK_ORGANIZATION_UNKNOWN",
            hint="events of payments made outside carelog's checkout cannot be placed",
        )
    primary = orgs[0]
    claim_org = None if primary == NO_ORG else primary
    try:
        with system_audit(ACTOR, primary):
            async with scopes.system_scope(ACTOR, primary) as session:
                claimed = await session.scalar(
                    queries.CLAIM_EVENT,
                    {"stripe_event_id": event_id, "event_type": event_type, "org_id": claim_org},
                )
                if claimed is None:
                    return "duplicate"
                for org in orgs:
                    if org != primary:  # same transaction, the next organization's context
                        await session.execute(queries.SWITCH_ORG, {"org_id": str(org)})
                    with system_audit(ACTOR, org):
                        await handler(session, org, obj)
                await session.execute(queries.MARK_PROCESSED, {"stripe_event_id": event_id})
    except Exception as exc:
        await _record_failure(scopes, claim_org, event_id, event_type, exc)
        raise ApiError(
            "the event could not be handled; Stripe will deliver it again",
            status_code=500,
            code="WEBHOOK_HANDLING_FAILED",
        ) from exc
    return "processed"


async def _record_failure(
    scopes: Scopes, org: uuid.UUID | None, event_id: str, event_type: str, exc: Exception
) -> None:
    # The class (and our code) only: driver messages can quote row values.
    known = isinstance(exc, NotYetKnownError | OrganizationUnknownError | CheckoutMetadataError)
    error = type(exc).__name__ + (f": {exc}" if known else "")
    log.warning(
        "stripe event handling failed; answering 500 so Stripe retries",
        extra={"stripe_event": event_id, "event_type": event_type, "error": error},
    )
    try:
        async with scopes.system_scope(ACTOR, org or NO_ORG) as session:
            await session.execute(
                queries.RECORD_FAILURE,
                {
                    "stripe_event_id": event_id,
                    "event_type": event_type,
                    "org_id": org,
                    "error": error[:500],
                },
            )
    except Exception:  # the 500 matters more than the bookkeeping
        log.exception("could not record the failed stripe event", extra={"stripe_event": event_id})


async def audit_invalid_signature(scopes: Scopes, payload: bytes, reason: str) -> bool:
    """Record a forged/unsigned delivery in the targeted org if there is one (see above)."""
    try:
        body = json.loads(payload)
        obj = body["data"]["object"]
        org, pi = org_in_metadata(obj), payment_intent_of(obj)
        event_id = str(body.get("id"))[:128] if body.get("id") else None
        event_type = str(body.get("type"))[:128]
    except (ValueError, TypeError, KeyError, AttributeError):
        org = pi = event_id = None
        event_type = None
    known = False
    if org is not None and pi is not None:
        async with scopes.system_scope(ACTOR, org) as session:
            known = bool(
                await session.scalar(
                    queries.INTENT_HAS_MEETING, {"org_id": org, "payment_intent_id": pi}
                )
            )
    if org is None or not known:
        log.warning(
            "stripe webhook rejected: %s signature (no known organization to audit it in)",
            reason,
            extra={"reason": reason, "stripe_event": event_id, "bytes": len(payload)},
        )
        return False
    with system_audit(ACTOR, org):
        await log_audit_event(
            "WEBHOOK_SIGNATURE_INVALID",
            "webhook",
            event_id,
            None,
            {
                "reason": reason,
                "payment_intent": pi,
                "event_type": event_type,
                "provider": "stripe",
            },
            outcome="denied",
        )
    return True
