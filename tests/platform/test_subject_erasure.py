"""GDPR erasure: the trail still verifies and proves, the database holds nothing of the person,
legal holds win, and a crash part-way leaves nothing half-done."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pgserver
import pytest
from api_harness import Api, running_api
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from test_meetings_api import book, monday

from carelog.audit.integrity.canonical import canonical_bytes
from carelog.audit.integrity.proofs import consistency_for, proof_for_event
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import verify_org
from carelog.audit.sealing import open_event_values
from carelog.db.engine import Database
from carelog.platform.auth.cookies import SESSION_COOKIE
from carelog.platform.subjects import erasure
from carelog.platform.subjects.identity import subject_directory

EMAIL = "zelda.erase-7c1@example.test"
NAME = "Zelda Erasurename"
NOTES = "ERASE-NOTES-9f2: ankle sprain, worried about running"
RECORD = "RECORD-NOTE-31ab: grade 2 sprain"


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


async def booked_patient(api: Api) -> tuple[str, str]:
    """A guest books anonymously; the expert writes and reads a record. (meeting, subject)."""
    a = api.world.a
    api.execute(
        "insert into events (org_id, workos_user_id, name, slug, duration_in_minutes, price)"
        " values (:o, :u, 'Free intro', 'free-intro', 30, 0)",
        o=a.org_id,
        u=a.expert,
    )
    [event] = api.rows("select id from events where slug = 'free-intro'")
    r = await book(
        api,
        event["id"],
        monday(10),
        guest_email=EMAIL,
        guest_name=NAME,
        guest_notes=NOTES,
    )
    assert r.status_code == 201, r.text
    meeting = r.json()["id"]
    url = f"/api/appointments/{meeting}/records"
    expert = api.auth(a.expert, a.org_id)
    assert (await api.client.post(url, json={"content": RECORD}, headers=expert)).is_success
    assert (await api.client.get(url, headers=expert)).is_success
    [m] = api.rows("select data_subject_id from meetings where id = :i", i=meeting)
    return meeting, m["data_subject_id"]


def owner(api: Api) -> dict[str, str]:
    a = api.world.a
    return {"Authorization": f"Bearer {api.token(a.owner, a.org_id, role='owner')}"}


def without_world_seals(api: Api) -> None:
    """The world's integrity rows are placeholders (fake keys); this test seals for real."""
    with api.db.sync_engine("admin").begin() as conn:
        conn.exec_driver_sql("set local session_replication_role = replica")
        for table in ("audit_seals", "audit_checkpoints", "audit_seal_state"):
            conn.exec_driver_sql(f"delete from {table} where org_id = %s", (api.world.a.org_id,))


async def seal(api: Api) -> None:
    await Sealer(api.runtime.scopes, api.runtime.signing_keyring).seal_once()


async def seal_past(api: Api, size: int) -> None:
    """Seal until a checkpoint covers more than ``size`` leaves. On a shared server another
    session's open transaction can hold the transaction horizon back for a while, and the
    sealer (rightly) never seals past it."""
    deadline = time.monotonic() + 120
    while True:
        await seal(api)
        [row] = api.rows(
            "select coalesce(max(tree_size), 0) as n from audit_checkpoints where org_id = :o",
            o=api.world.a.org_id,
        )
        if row["n"] > size or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


async def integrity(api: Api, event_id: uuid.UUID) -> dict[str, Any]:
    org = api.world.a.org_id
    keyring = api.runtime.signing_keyring
    async with api.runtime.scopes.system_scope("system:test-verify", org) as session:
        report = await verify_org(session, org, keyring.verifying_keyring())
        proof = await proof_for_event(session, org, event_id, keyring.public_keys())
    return {"ok": report.ok, "problems": report.problems, "proof": proof}


def pg_dump(db: Database) -> str:
    url = db.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    done = subprocess.run(
        [str(binary), "--no-owner", "--data-only", url], capture_output=True, text=True, check=True
    )
    return done.stdout


async def test_erasure_keeps_every_proof_and_no_personal_value_survives_in_a_dump(
    api: Api,
) -> None:
    org = api.world.a.org_id
    without_world_seals(api)
    meeting, subject = await booked_patient(api)
    [created] = api.audit("action = 'APPOINTMENT_CREATED' and resource_id = :m", m=meeting)
    await seal(api)
    before = await integrity(api, created["id"])
    assert before["ok"], before["problems"]
    dump = pg_dump(api.db)
    assert EMAIL in dump and NAME in dump and NOTES in dump  # the dump does see live data

    r = await api.client.post(
        f"/api/subjects/{subject}/erasure",
        json={"reason": "Art. 17 request by e-mail, ticket 4711"},
        headers=owner(api),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed"
    cert, sig = body["certificate"], body["signature"]
    assert cert["subject_id"] == subject and cert["audit_data_key"]["destroyed"]
    assert cert["erased_from"]["meetings"] == 1
    assert cert["retained"]["clinical_records_kept"] == 1 and cert["retained"]["destroy_after"]
    assert cert["requested_by"] == api.world.a.owner
    public = api.runtime.signing_keyring.public_keys()[sig["key_id"]]
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
        base64.b64decode(sig["signature"]), canonical_bytes(cert, 1)
    )
    # The certificate is in the trail, in the same transaction as the erasure.
    [event] = api.audit("action = 'SUBJECT_ERASED'")
    assert event["metadata"]["certificate"] == cert and event["data_subject_id"] == subject

    await seal_past(api, before["proof"]["tree_size"])
    after = await integrity(api, created["id"])
    assert after["ok"], after["problems"]
    # The same leaf, proven in the old and in the new checkpoint; the two are consistent.
    assert after["proof"]["leaf_hash"] == before["proof"]["leaf_hash"]
    old_size = before["proof"]["tree_size"]
    new_size = after["proof"]["tree_size"]
    assert new_size > old_size
    async with api.runtime.scopes.system_scope("system:test-verify", org) as session:
        consistency = await consistency_for(session, org, old_size, new_size)
    assert consistency["consistency_proof"]

    # The sealed values are unreadable now; the viewer-facing rendering says "erased".
    stored = api.audit("resource_id = :m and action = 'APPOINTMENT_CREATED'", m=meeting)[0]
    shown = open_event_values(stored["new_values"], None, org, stored["id"], "/n")
    assert shown["guest_email"] == shown["guest_name"] == shown["guest_notes"] == "[erased]"
    assert await api.runtime.audit.subject_keys.get(org, subject, create=False) is None

    dump = pg_dump(api.db)
    for personal in (EMAIL, NAME, NOTES, "Erasurename", "ERASE-NOTES", "RECORD-NOTE"):
        assert personal not in dump, personal
    [m] = api.rows(
        "select guest_email, guest_name, guest_notes from meetings where id = :i", i=meeting
    )
    assert m == {"guest_email": "erased@invalid", "guest_name": "[erased]", "guest_notes": None}

    # Exports and the viewer show "erased" for the values, and still the same leaf.
    export = await api.client.get(
        "/api/audit/export",
        params={"format": "jsonl", "data_subject_id": subject},
        headers=owner(api),
    )
    assert export.status_code == 200, export.text
    exported = [json.loads(line) for line in export.text.splitlines()]
    [booked] = [e for e in exported if e["action"] == "APPOINTMENT_CREATED"]
    assert booked["new_values"]["guest_email"] == "[erased]"
    assert "sealed:" not in export.text
    # The CSV export too (its rows are rendered from the same PostgreSQL line).
    export = await api.client.get(
        "/api/audit/export",
        params={"format": "csv", "data_subject_id": subject},
        headers=owner(api),
    )
    assert export.status_code == 200, export.text
    [row] = [
        r
        for r in csv.DictReader(io.StringIO(export.text, newline=""))
        if r["action"] == "APPOINTMENT_CREATED"
    ]
    assert json.loads(row["new_values"])["guest_email"] == "[erased]"
    assert "sealed:" not in export.text
    api.client.cookies.set(SESSION_COOKIE, api.token(api.world.a.owner, org, role="owner"))
    page = await api.client.get(f"/audit/events/{created['id']}")
    api.client.cookies.clear()
    assert page.status_code == 200 and 'class="badge erased"' in page.text
    assert "sealed:" not in page.text

    # Erasing again is idempotent: the completed request comes back, nothing new happens.
    again = await api.client.post(
        f"/api/subjects/{subject}/erasure", json={"reason": "again"}, headers=owner(api)
    )
    assert again.status_code == 200 and again.json()["erasure_id"] == body["erasure_id"]
    assert len(api.audit("action = 'SUBJECT_ERASED'")) == 1
    # A new booking with the same e-mail is a new, unrelated subject.
    assert subject_directory() is not None


async def test_erasure_under_a_legal_hold_is_refused_and_names_the_hold(api: Api) -> None:
    a = api.world.a
    meeting, subject = await booked_patient(api)
    api.execute(
        "insert into audit_legal_holds (org_id, reason, data_subject_id, placed_by)"
        " values (:o, 'malpractice claim 2026-17', :s, :u)",
        o=a.org_id,
        s=subject,
        u=a.owner,
    )
    r = await api.client.post(
        f"/api/subjects/{subject}/erasure", json={"reason": "Art. 17"}, headers=owner(api)
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "LEGAL_HOLD" and "malpractice claim 2026-17" in error["reason"]
    [m] = api.rows("select guest_email from meetings where id = :i", i=meeting)
    assert m["guest_email"] == EMAIL  # nothing erased
    assert await api.runtime.audit.subject_keys.get(a.org_id, subject, create=False)
    [refusal] = api.audit("action = 'SUBJECT_ERASURE_REFUSED'")
    assert refusal["outcome"] == "denied" and refusal["data_subject_id"] == subject
    [row] = api.rows(
        "select status, outcome from subject_erasures where subject_id = :s", s=subject
    )
    assert row["status"] == "refused"


class Crash(BaseException):
    """Stands in for the process dying (not an Exception: nothing may catch it)."""


@pytest.mark.parametrize("at", ["operational", "records", "key", "certificate"])
async def test_a_crash_mid_erasure_leaves_nothing_half_done_and_resumes(api: Api, at: str) -> None:
    org = api.world.a.org_id
    meeting, subject = await booked_patient(api)
    scopes = api.runtime.scopes
    signing = api.runtime.signing_keyring
    pending = await erasure.request_erasure(
        scopes, subject_directory(), org, email=EMAIL.upper(), reason="Art. 17", requested_by="dpo"
    )
    assert pending.subject_id == subject

    def crash(step: str) -> None:
        if step == at:
            raise Crash(step)

    with pytest.raises(Crash):
        await erasure.carry_out(scopes, signing, pending, interrupt=crash)
    [m] = api.rows("select guest_email from meetings where id = :i", i=meeting)
    assert m["guest_email"] == EMAIL
    assert await api.runtime.audit.subject_keys.get(org, subject, create=False) is not None
    assert api.audit("action = 'SUBJECT_ERASED'") == []
    [row] = api.rows("select status from subject_erasures where subject_id = :s", s=subject)
    assert row["status"] == "requested"

    [done] = await erasure.resume_pending(scopes, signing, org)
    assert done.status == "completed" and done.id == pending.id
    [m] = api.rows("select guest_email from meetings where id = :i", i=meeting)
    assert m["guest_email"] == "erased@invalid"
    assert await api.runtime.audit.subject_keys.get(org, subject, create=False) is None
    assert len(api.audit("action = 'SUBJECT_ERASED'")) == 1
    assert await erasure.resume_pending(scopes, signing, org) == []


async def test_retained_records_are_destroyed_when_their_retention_ends(api: Api) -> None:
    org = api.world.a.org_id
    meeting, subject = await booked_patient(api)
    r = await api.client.post(
        f"/api/subjects/{subject}/erasure", json={"reason": "Art. 17"}, headers=owner(api)
    )
    assert r.status_code == 200, r.text
    scopes = api.runtime.scopes
    assert await erasure.destroy_due_records(scopes, org) == 0  # ten years to go
    api.execute("update records set destroy_after = now() - interval '1 day'")
    assert await erasure.destroy_due_records(scopes, org) == 1
    assert api.rows("select id from records where meeting_id = :m", m=meeting) == []
    [deleted] = api.audit("action = 'MEDICAL_RECORD_DELETED'")
    assert deleted["data_subject_id"] == subject
    assert deleted["metadata"]["reason"] == "retention_ended_after_erasure"
