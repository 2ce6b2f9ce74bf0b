"""Which organization a Stripe object belongs to, from what carelog already holds.

The system role sees one organization at a time (RLS), so the webhook cannot search every
tenant for a payment intent, and it should not be able to. Two sources, both local:

1. ``metadata.org_id``: carelog's checkout writes it onto the Checkout Session and its
   PaymentIntent (``payment_intent_data.metadata``); Stripe copies it onto the charges. The
   payload is trusted only after its signature has been verified.
2. ``payment_refs``: every id recorded at payment time (payment intent and checkout session of
   a meeting, the charge of a succeeded payment, the Connect account of a transfer, the id of
   a bookable event) routed to its organization. ``app.payment_ref_orgs`` answers "which
   organizations own these ids" and nothing else. Disputes and refunds (``metadata: {}``, the
   PaymentIntent often ``null``) are found through their charge; checkouts opened before the
   cut-over (``meeting``/``payment``/``transfer`` JSON strings, no ``org_id``) through the event
   id inside ``meeting``.

No Stripe API call: the organization of a signed event never depends on the network.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from carelog.db.unit import Unit
from carelog.platform.payments import queries

#: The fields, per Stripe object type, that name another object carelog may know.
_REFERENCES = {
    "payment_intent": ("id", "latest_charge"),
    "charge": ("id", "payment_intent"),
    "dispute": ("charge", "payment_intent"),
    "refund": ("charge", "payment_intent"),
    "checkout.session": ("id", "payment_intent"),
    "account": ("id",),
}


def _parse(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _id(value: object) -> str | None:
    """A Stripe reference: an id string, or an expanded object's id."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def payment_intent_of(obj: Mapping[str, Any]) -> str | None:
    if obj.get("object") == "payment_intent":
        return str(obj["id"])
    return _id(obj.get("payment_intent"))


def org_in_metadata(obj: Mapping[str, Any]) -> uuid.UUID | None:
    metadata = obj.get("metadata") or {}
    return _parse(metadata["org_id"]) if "org_id" in metadata else None


def legacy_blob(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """One of the pre-cut-over metadata blobs (``meeting``, ``payment``, ``transfer``)."""
    raw = (obj.get("metadata") or {}).get(key)
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def references(event: Mapping[str, Any]) -> list[str]:
    """Every id of the event's object that carelog may have recorded, most specific first."""
    obj: Mapping[str, Any] = event["data"]["object"]
    found = [_id(obj.get(field)) for field in _REFERENCES.get(str(obj.get("object")), ())]
    found.append(_id(event.get("account")))  # Connect events name the connected account
    event_id = legacy_blob(obj, "meeting").get("id")
    found.append(str(event_id) if event_id else None)
    return list(dict.fromkeys(ref for ref in found if ref))


async def resolve_orgs(session: Unit, event: Mapping[str, Any]) -> list[uuid.UUID]:
    """The organizations the event's object belongs to (empty: none carelog knows)."""
    found = org_in_metadata(event["data"]["object"])
    if found is not None:
        return [found]
    refs = references(event)
    if not refs:
        return []
    return list((await session.execute(queries.ORGS_OF_REFS, {"refs": refs})).scalars())


async def record_ref(
    session: Unit,
    org: uuid.UUID,
    ref: str | None,
    kind: str,
    payment_intent: str | None = None,
) -> None:
    """Route a Stripe id to the current organization (inside its system scope)."""
    if ref:
        await session.execute(
            queries.RECORD_REF,
            {"ref": ref, "org_id": org, "kind": kind, "payment_intent_id": payment_intent},
        )


async def intent_of_charge(session: Unit, org: uuid.UUID, obj: Mapping[str, Any]) -> str | None:
    """The payment intent of a charge, dispute or refund: named, or recorded with its charge."""
    named = payment_intent_of(obj)
    if named is not None:
        return named
    charge = _id(obj.get("id") if obj.get("object") == "charge" else obj.get("charge"))
    if charge is None:
        return None
    found = await session.scalar(queries.INTENT_OF_CHARGE, {"org_id": org, "ref": charge})
    return str(found) if found else None
