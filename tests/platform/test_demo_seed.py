"""The demo seed: idempotent, tenant-correct, encrypted records, visible only to the right org."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from carelog.audit.api import configure_audit
from carelog.audit.integrity import SigningKeyring, generate_key
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.integrity.verify import verify_org
from carelog.audit.setup import create_audit_service
from carelog.db.engine import Database
from carelog.db.schema import GLOBAL_TABLES, TENANT_TABLES, Meeting
from carelog.db.session import Scopes
from carelog.platform import demo
from carelog.platform.audit_catalog import build_catalog
from carelog.platform.records import RecordKeyring


@pytest.fixture(autouse=True)
async def audit_running(fresh_db: Database, tmp_path: Path) -> AsyncIterator[None]:
    """Seeding records every row it creates, so it needs the audit service like any writer."""
    service = create_audit_service(fresh_db, build_catalog(), spool_dir=tmp_path / "spool")
    configure_audit(service)
    await service.start()
    try:
        yield
    finally:
        await service.stop()
        configure_audit(None)


def _counts(db: Database) -> dict[str, int]:
    with db.sync_engine("admin").connect() as conn:
        return {
            t: int(conn.execute(sa.text(f"select count(*) from {t}")).scalar_one())
            for t in (*GLOBAL_TABLES, *TENANT_TABLES)
        }


def _rows(db: Database, sql: str, **params: object) -> list[sa.Row[Any]]:
    with db.sync_engine("admin").connect() as conn:
        return list(conn.execute(sa.text(sql), params))


async def test_demo_seed(fresh_db: Database) -> None:
    keyring = RecordKeyring.generate("demo-test")
    scopes = Scopes(fresh_db)
    try:
        first = await demo.seed_demo(scopes, keyring)
        after_first = _counts(fresh_db)
        second = await demo.seed_demo(scopes, keyring)
        after_second = _counts(fresh_db)

        # --- idempotent: nothing new, same ids
        assert first.created_rows > 0
        assert second.created_rows == 0
        assert after_second == after_first
        assert second.as_dict() == first.as_dict()
        assert "nothing created" in second.describe()

        _check_trail(fresh_db, first)
        await _check_verifiable(scopes, first)
        _check_shape(first)
        _check_tenancy(fresh_db, first)
        _check_records(fresh_db, first, keyring)
        await _check_owner_visibility(scopes, first)
    finally:
        await fresh_db.dispose()


def _check_trail(db: Database, summary: demo.DemoSummary) -> None:
    """Every seeded row is an event of the named seeding actor, in the org it was seeded in."""
    rows = _rows(db, "select org_id, workos_user_id, action, metadata from audit_logs")
    assert len(rows) == summary.created_rows
    assert {r.workos_user_id for r in rows} == {demo.ACTOR}
    actions = {r.action for r in rows}
    assert {"MEDICAL_RECORD_CREATED", "APPOINTMENT_CREATED", "DEMO_DATA_SEEDED"} <= actions
    assert {r.org_id for r in rows} >= {o.id for o in summary.orgs}


async def _check_verifiable(scopes: Scopes, summary: demo.DemoSummary) -> None:
    _kid, seed = generate_key()
    keyring = SigningKeyring.from_seed(seed, "demo-k1")
    await Sealer(scopes, keyring).seal_once()
    for org in summary.orgs:
        async with scopes.system_scope("system:audit-verify", org.id) as session:
            report = await verify_org(session, org.id, keyring.verifying_keyring())
        assert report.ok and report.leaves > 0, report.to_json_dict()


def _check_shape(summary: demo.DemoSummary) -> None:
    lisbon, porto = summary.org("demo-lisbon"), summary.org("demo-porto")
    assert lisbon.name == "Lisbon Wellness Clinic"
    assert porto.name == "Porto Physio"
    assert lisbon.workos_org_id.startswith("org_demo_")
    for org in summary.orgs:
        roles = [u.role for u in org.users]
        assert roles.count("owner") == 1
        assert 1 <= roles.count("expert") <= 2
        assert roles.count("patient") >= 1
        assert all(u.workos_user_id.startswith("user_demo_") for u in org.users)
        assert all((u.personal_org_id is not None) == (u.role == "patient") for u in org.users)
        assert len(org.event_ids) == 2 * roles.count("expert")
        assert org.meeting_ids and org.record_ids
    assert summary.as_dict()["orgs"][0]["id"] == str(lisbon.id)


def _check_tenancy(db: Database, summary: demo.DemoSummary) -> None:
    for org in summary.orgs:
        org_row = _rows(db, "select type, slug from organizations where id = :id", id=org.id)
        assert [tuple(r) for r in org_row] == [("clinic", org.slug)]
        members: dict[str, str] = {
            r.workos_user_id: r.role
            for r in _rows(
                db,
                "select workos_user_id, role from user_org_memberships where org_id = :o",
                o=org.id,
            )
        }
        assert members[org.user("owner").workos_user_id] == "owner"
        experts = [u.workos_user_id for u in org.users if u.role == "expert"]
        assert all(members[e] == "member" for e in experts)
        patients = {u.workos_user_id: u.personal_org_id for u in org.users if u.role == "patient"}
        assert not set(patients) & set(members)

        owner_roles = _rows(
            db,
            "select role from roles where workos_user_id = :u",
            u=org.user("owner").workos_user_id,
        )
        assert ("admin",) in [tuple(r) for r in owner_roles]

        for table in ("events", "schedules", "profiles", "expert_setup", "scheduling_settings"):
            owners = _rows(
                db, f"select org_id, workos_user_id from {table} where org_id = :o", o=org.id
            )
            assert sorted({r.workos_user_id for r in owners}) == sorted(experts), table
        setups = _rows(db, "select setup_complete from expert_setup where org_id = :o", o=org.id)
        assert all(r[0] for r in setups)
        published = _rows(db, "select published from profiles where org_id = :o", o=org.id)
        assert all(r[0] for r in published)
        windows = _rows(
            db,
            "select count(*), min(start_time)::text, max(end_time)::text "
            "from schedule_availabilities where org_id = :o",
            o=org.id,
        )
        assert tuple(windows[0]) == (5 * len(experts), "09:00:00", "17:00:00")

        for pid, personal in patients.items():
            rows = _rows(
                db,
                "select o.type, m.role from organizations o join user_org_memberships m "
                "on m.org_id = o.id where o.id = :o and m.workos_user_id = :u",
                o=personal,
                u=pid,
            )
            assert [tuple(r) for r in rows] == [("patient_personal", "owner")]

        meetings = _rows(
            db,
            "select id, org_id, workos_user_id, guest_workos_user_id, guest_org_id, start_time "
            "from meetings where id = any(:ids)",
            ids=list(org.meeting_ids),
        )
        assert len(meetings) == len(org.meeting_ids)
        for m in meetings:
            assert m.org_id == org.id
            assert m.workos_user_id in experts
            assert patients[m.guest_workos_user_id] == m.guest_org_id
        starts = [(m.workos_user_id, m.start_time) for m in meetings]
        assert len(starts) == len(set(starts)), "an expert is booked twice at one time"


def _check_records(db: Database, summary: demo.DemoSummary, keyring: RecordKeyring) -> None:
    notes = demo.planned_notes()
    rows = _rows(
        db,
        "select r.id, r.org_id, r.meeting_id, r.key_id, r.vault_encrypted_content, "
        "r.encryption_method, r.guest_email, r.expert_id, m.workos_user_id as host, "
        "m.start_time <= now() as past from records r "
        "join meetings m on m.id = r.meeting_id and m.org_id = r.org_id",
    )
    expected = {rid for org in summary.orgs for rid in org.record_ids}
    assert {r.id for r in rows} == expected == set(notes)
    for r in rows:
        assert r.guest_email is None
        assert r.encryption_method == "aes256gcm"
        assert r.key_id == keyring.active_key_id
        assert r.expert_id == r.host
        assert r.past
        assert notes[r.id] not in r.vault_encrypted_content
        text = keyring.decrypt(
            r.key_id,
            r.vault_encrypted_content,
            record_id=r.id,
            meeting_id=r.meeting_id,
            org_id=r.org_id,
        )
        assert text == notes[r.id]
        assert any(r.org_id == org.id and r.id in org.record_ids for org in summary.orgs)


async def _check_owner_visibility(scopes: Scopes, summary: demo.DemoSummary) -> None:
    lisbon, porto = summary.org("demo-lisbon"), summary.org("demo-porto")
    for org, other in ((lisbon, porto), (porto, lisbon)):
        owner = org.user("owner").workos_user_id
        async with scopes.org_scope(owner, org.id) as session:
            seen = set((await session.scalars(sa.select(Meeting.id))).all())
        assert seen == set(org.meeting_ids)
        assert not seen & set(other.meeting_ids)
        # Pointing the scope at the other clinic shows nothing: the owner is no member there.
        async with scopes.org_scope(owner, other.id) as session:
            assert (await session.scalars(sa.select(Meeting.id))).all() == []


async def test_patient_sees_own_meetings_from_personal_org(fresh_db: Database) -> None:
    scopes = Scopes(fresh_db)
    try:
        summary = await demo.seed_demo(scopes, RecordKeyring.generate())
        org = summary.org("demo-porto")
        patient = next(u for u in org.users if u.role == "patient")
        assert patient.personal_org_id is not None
        async with scopes.org_scope(patient.workos_user_id, patient.personal_org_id) as s:
            rows = (await s.execute(sa.select(Meeting.id, Meeting.guest_workos_user_id))).all()
        assert rows
        assert {r.guest_workos_user_id for r in rows} == {patient.workos_user_id}
        assert {r.id for r in rows} <= set(org.meeting_ids)
        assert isinstance(rows[0].id, uuid.UUID)
    finally:
        await fresh_db.dispose()
