"""The accounting of disclosures (HIPAA §164.528) and access history (GDPR Art. 15), the
append-only disclosures register, and the subject's export bundle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from api_harness import Api, running_api
from test_subject_erasure import EMAIL, NAME, NOTES, RECORD, booked_patient, owner

from carelog.db.engine import Database


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


async def disclose(api: Api, subject: str) -> None:
    r = await api.client.post(
        f"/api/subjects/{subject}/disclosures",
        json={
            "recipient": "Regional health authority",
            "purpose": "mandatory public-health reporting",
            "description": "diagnosis category and visit date",
            "disclosed_at": "2026-11-30T09:00:00+00:00",
        },
        headers=owner(api),
    )
    assert r.status_code == 201, r.text


async def test_accounting_names_who_what_why_and_outcome(api: Api) -> None:
    a = api.world.a
    meeting, subject = await booked_patient(api)
    refused = await api.client.get(
        f"/api/appointments/{meeting}/records", headers=api.auth(a.member, a.org_id)
    )
    assert refused.status_code == 404
    await disclose(api, subject)

    r = await api.client.get(f"/api/subjects/{subject}/accounting", headers=owner(api))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["subject_id"] == subject and doc["organization"] == "Clinic A"
    entries = {(e["action"], e["outcome"]): e for e in doc["access"]}
    viewed = entries[("MEDICAL_RECORD_VIEWED", "success")]
    assert viewed["actor_name"] == "Ex a" and viewed["actor_role"] == "expert (member)"
    assert viewed["what"] == "clinical record(s) viewed" and viewed["purpose"] == "treatment"
    denied = entries[("MEDICAL_RECORD_VIEWED", "denied")]
    assert denied["actor_id"] == a.member and denied["actor_role"] == "staff (member)"
    booked = entries[("APPOINTMENT_CREATED", "success")]
    assert booked["actor_role"] == "system"
    [d] = doc["disclosures"]
    assert d["recipient"] == "Regional health authority" and d["recorded_by"] == a.owner
    text = r.text
    for personal in (EMAIL, NAME, NOTES, RECORD):
        assert personal not in text  # the document lists accesses, not the data
    # Asking for the accounting is itself on record.
    assert api.audit("action = 'SUBJECT_ACCOUNTING_GENERATED' and data_subject_id = :s", s=subject)
    assert api.audit("action = 'SUBJECT_DISCLOSURE_RECORDED' and data_subject_id = :s", s=subject)

    # The printable document in the viewer.
    from carelog.platform.auth.cookies import SESSION_COOKIE

    api.client.cookies.set(SESSION_COOKIE, api.token(a.owner, a.org_id, role="owner"))
    page = await api.client.get(f"/audit/subjects/{subject}/accounting")
    api.client.cookies.clear()
    assert page.status_code == 200, page.text
    assert "Accounting of disclosures" in page.text and "Regional health authority" in page.text
    assert "Ex a" in page.text and EMAIL not in page.text
    # Members who are not admins get neither.
    assert (
        await api.client.get(
            f"/api/subjects/{subject}/accounting", headers=api.auth(a.member, a.org_id)
        )
    ).status_code == 403


async def test_the_disclosures_register_is_append_only(api: Api) -> None:
    _, subject = await booked_patient(api)
    await disclose(api, subject)
    for sql in (
        "update subject_disclosures set recipient = 'nobody'",
        "delete from subject_disclosures",
        "truncate subject_disclosures",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            api.execute(sql)  # even the superuser
    assert len(api.rows("select id from subject_disclosures where subject_id = :s", s=subject)) == 1


async def test_export_bundle_holds_everything_and_is_recorded(api: Api) -> None:
    meeting, subject = await booked_patient(api)
    r = await api.client.get(f"/api/subjects/{subject}/export", headers=owner(api))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["format"] == "carelog.subject-export.v1"
    [m] = bundle["meetings"]
    assert (m["guest_email"], m["guest_name"], m["guest_notes"]) == (EMAIL, NAME, NOTES)
    [rec] = bundle["clinical_records"]
    assert rec["content"] == RECORD and rec["status"] == "decrypted"
    [created] = [e for e in bundle["audit_events"] if e["action"] == "APPOINTMENT_CREATED"]
    assert created["new_values"]["guest_email"] == EMAIL  # opened under the subject's key
    assert bundle["accounting"]["subject_id"] == subject
    [event] = api.audit("action = 'SUBJECT_DATA_EXPORTED'")
    assert event["data_subject_id"] == subject and event["metadata"]["clinical_records"] == 1
    assert EMAIL not in str(event)
    # After erasure the export still works and shows the erased values as erased.
    erase = await api.client.post(
        f"/api/subjects/{subject}/erasure", json={"reason": "Art. 17"}, headers=owner(api)
    )
    assert erase.status_code == 200, erase.text
    after = (await api.client.get(f"/api/subjects/{subject}/export", headers=owner(api))).json()
    [created] = [e for e in after["audit_events"] if e["action"] == "APPOINTMENT_CREATED"]
    assert created["new_values"]["guest_email"] == "[erased]"
    assert after["meetings"][0]["guest_email"] == "erased@invalid"
    assert after["subject"]["erased_at"] is not None
    assert meeting
