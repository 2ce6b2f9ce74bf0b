"""Sensitive keys are recognised by meaning, whatever their spelling, for live events too.

The spellings below are the ones real callers used: the JavaScript-era payloads wrote
``guestEmail``/``guestName``/``guestNotes``/``expertName``; forms and headers use kebab-case;
Stripe-style metadata nests the guest under a ``meeting`` or ``guest`` object.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from audit_env import AuditEnv

from carelog.audit import audit_context, log_audit_event
from carelog.audit.events import MASK_PREFIX, Masker
from carelog.audit.fields import FieldClassifier, canonical_field, field_words
from carelog.platform.audit_catalog import SENSITIVE_FIELDS, build_catalog

CATALOG = build_catalog()
MASKER = Masker(b"k" * 32, CATALOG.sensitive_fields)
CLASSIFIER = FieldClassifier(SENSITIVE_FIELDS)

PHI = {
    "email": "maria.duarte@example.pt",
    "name": "Maria Inês Duarte",
    "notes": "Takes sertraline 50mg daily",
    "expert": "Ana Rita Costa",
}


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("guestEmail", ("guest", "email")),
        ("guest_email", ("guest", "email")),
        ("guest-email", ("guest", "email")),
        ("GUEST_EMAIL", ("guest", "email")),
        ("Guest Email", ("guest", "email")),
        ("guest.email", ("guest", "email")),
        ("patientDateOfBirth", ("patient", "date", "of", "birth")),
        ("HTTPAccessToken", ("http", "access", "token")),
        ("stripeCVC", ("stripe", "cvc")),
    ],
)
def test_every_spelling_reduces_to_the_same_words(key: str, words: tuple[str, ...]) -> None:
    assert field_words(key) == words
    assert canonical_field(key) == "_".join(words)


@pytest.mark.parametrize(
    "key",
    [
        "guestEmail",
        "guestName",
        "guestNotes",
        "expertName",
        "guest-notes",
        "GUEST_NAME",
        "firstName",
        "last-name",
        "clinicalNotes",
        "contactEmail",
        "x-api-key",
        "patientDateOfBirth",
        "stripeAccessToken",
        "phoneNumber",
        "customer_email_address",
    ],
)
def test_sensitive_keys_in_any_style(key: str) -> None:
    assert CLASSIFIER.is_sensitive(key), key


@pytest.mark.parametrize(
    "key",
    ["name", "eventName", "contentProvided", "metadataProvided", "emailSent", "slug", "price"],
)
def test_flags_and_neutral_names_stay_readable(key: str) -> None:
    assert not CLASSIFIER.is_sensitive(key), key


def test_parent_key_says_whose_name_it_is() -> None:
    assert CLASSIFIER.is_sensitive("name", parent="guest")
    assert CLASSIFIER.is_sensitive("name", parent="guestInfo")
    assert not CLASSIFIER.is_sensitive("name", parent="event")


def test_scrub_masks_real_spellings_at_any_depth() -> None:
    value = {
        "guestEmail": PHI["email"],
        "guestName": PHI["name"],
        "guestNotes": PHI["notes"],
        "expertName": PHI["expert"],
        "meeting": {"guest-email": PHI["email"], "guest": {"name": PHI["name"]}},
        "attendees": [{"Guest_Notes": PHI["notes"]}],
        "eventName": "Initial consultation",
        "contentProvided": True,
    }
    scrubbed = MASKER.scrub(value)
    text = repr(scrubbed)
    for secret in PHI.values():
        assert secret not in text
    assert scrubbed["guestEmail"] == MASKER.mask_value(PHI["email"])
    assert scrubbed["meeting"]["guest"]["name"].startswith(MASK_PREFIX)
    assert scrubbed["eventName"] == "Initial consultation"
    assert scrubbed["contentProvided"] is True


async def test_live_event_with_camel_case_keys_stores_no_phi(audit_env: AuditEnv) -> None:
    """Through the real service and writer role: nothing of the PHI reaches ``audit_logs``."""
    a = audit_env.world.a
    with audit_context(actor_id=a.expert, org_id=a.org_id, ip_address="192.0.2.7"):
        await log_audit_event(
            "APPOINTMENT_CREATED",
            "appointment",
            str(a.ids["meeting"]),
            {
                "new_values": {
                    "guestEmail": PHI["email"],
                    "guestName": PHI["name"],
                    "guestNotes": PHI["notes"],
                    "startTime": "2024-03-01T10:00:00Z",
                }
            },
            {"expertName": PHI["expert"], "guest-email": PHI["email"], "eventId": "e1"},
            data_subject=a.patient,
        )
    with audit_env.db.sync_engine("admin").connect() as conn:
        row = conn.execute(
            sa.text(
                "select to_jsonb(a)::text from audit_logs a where action = 'APPOINTMENT_CREATED'"
            )
        ).scalar_one()
    for secret in PHI.values():
        assert secret not in row
    assert "2024-03-01T10:00:00Z" in row and '"eventId": "e1"' in row
