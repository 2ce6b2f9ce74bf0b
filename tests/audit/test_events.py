"""Minimisation and validation happen before anything is stored."""

from __future__ import annotations

import uuid

import pytest

from carelog.audit.context import AuditContext
from carelog.audit.errors import AuditInputError
from carelog.audit.events import MASK_PREFIX, Masker, build_event, minimise_changes
from carelog.platform.audit_catalog import build_catalog

CATALOG = build_catalog()
MASKER = Masker(b"k" * 32, CATALOG.sensitive_fields)
CTX = AuditContext(actor_id="user_1", org_id=uuid.uuid4(), ip_address="192.0.2.1")


def build(action: str = "APPOINTMENT_UPDATED", resource_type: str = "appointment", **kw: object):  # type: ignore[no-untyped-def]
    return build_event(
        CATALOG,
        MASKER,
        CTX,
        action,
        resource_type,
        "m1",
        kw.pop("changes", None),
        kw.pop("metadata", None),
        **kw,  # type: ignore[arg-type]
    )[0]


def test_only_changed_fields_are_kept() -> None:
    old, new = minimise_changes(
        {"old_values": {"a": 1, "b": 2, "c": 3}, "new_values": {"a": 1, "b": 5, "d": 4}}
    )
    assert old == {"b": 2, "c": 3}
    assert new == {"b": 5, "d": 4}
    assert minimise_changes({"old_values": {"a": 1}, "new_values": {"a": 1}}) == (None, None)


def test_sensitive_fields_are_masked_at_any_depth() -> None:
    event = build(
        changes={
            "old_values": {"guest_notes": "headache", "start": "9:00"},
            "new_values": {"guest_notes": "migraine", "start": "10:00"},
        },
        metadata={"guest": {"guest_email": "p@example.test", "count": 2}},
    )
    assert event.old_values is not None and event.new_values is not None
    assert event.old_values["guest_notes"].startswith(MASK_PREFIX)
    assert event.old_values["guest_notes"] != event.new_values["guest_notes"]
    assert event.metadata == {
        "guest": {"guest_email": MASKER.mask_value("p@example.test"), "count": 2}
    }
    assert "headache" not in repr(event) and "p@example.test" not in repr(event)


def test_masks_are_stable_so_equality_can_be_checked() -> None:
    assert MASKER.mask_value("x") == MASKER.mask_value("x")
    assert MASKER.mask_value("x") != Masker(b"j" * 32, frozenset()).mask_value("x")


def test_unknown_action_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(AuditInputError) as info:
        build(action="APPOINTMENT_CREATE")
    assert info.value.field == "action"
    assert "APPOINTMENT_CREATED" in str(info.value)


def test_unknown_resource_type_and_outcome() -> None:
    with pytest.raises(AuditInputError) as info:
        build(resource_type="meeting")
    assert info.value.field == "resource_type"
    with pytest.raises(AuditInputError) as info:
        build(outcome="maybe")
    assert info.value.field == "outcome"


def test_metadata_has_a_size_cap() -> None:
    with pytest.raises(AuditInputError) as info:
        build(metadata={"blob": "x" * 20_000})
    assert info.value.field == "metadata"
    assert "cap" in str(info.value)


@pytest.mark.parametrize("changes", [{"old": {}}, {"old_values": [1]}, "not a mapping"])
def test_malformed_changes(changes: object) -> None:
    with pytest.raises(AuditInputError) as info:
        build(changes=changes)
    assert info.value.field == "changes"


def test_unserialisable_values_are_clear_errors() -> None:
    with pytest.raises(AuditInputError) as info:
        build(metadata={"obj": object()})
    assert info.value.field == "metadata"


def test_context_fills_the_automatic_fields() -> None:
    event = build(data_subject="user_patient")
    assert event.workos_user_id == "user_1"
    assert event.actor_type == "user"
    assert event.org_id == CTX.org_id
    assert event.ip_address == "192.0.2.1"
    assert event.data_subject_id == "user_patient"
    assert event.created_at.tzinfo is not None
    assert event.id.version == 7


def test_catalog_gives_legacy_actions_precise_homes() -> None:
    homes = {
        "EVENT_CREATED": "EVENT_TYPE_CREATED",
        "EVENT_DELETED": "EVENT_TYPE_DELETED",
        "SCHEDULE_UPDATED": "SCHEDULE_UPDATED",
        "BLOCKED_DATE_ADDED": "BLOCKED_DATE_ADDED",
        "PROFILE_PUBLISHED": "PROFILE_PUBLISHED",
        "PRACTITIONER_AGREEMENT_ACCEPTED": "PRACTITIONER_AGREEMENT_ACCEPTED",
        "MEETING_PAYMENT_FAILED": "APPOINTMENT_PAYMENT_FAILED",
        "FAILED_READ_MEDICAL_RECORDS_UNAUTHORIZED": "MEDICAL_RECORD_VIEWED",
    }
    for legacy, home in homes.items():
        spec = CATALOG.legacy_action(legacy)
        assert spec is not None and spec.name == home, legacy
    assert CATALOG.action("MEDICAL_RECORD_VIEWED").fail_closed
