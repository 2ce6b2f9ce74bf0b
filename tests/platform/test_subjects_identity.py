"""Patients as data subjects: every booking names one, and every event about them says so."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api
from test_meetings_api import book, monday
from workos_standin import API_KEY, workos_standin

from carelog.core.settings import WorkOSSettings
from carelog.db.engine import Database
from carelog.platform.subjects.identity import (
    SubjectDirectory,
    WorkOSGuestUsers,
    installed_subjects,
)

GUEST = {
    "guest_email": "Ana.Guest@Example.TEST",
    "guest_name": "Ana Guest",
    "guest_notes": "first visit",
    "timezone": "Europe/Lisbon",
}


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


@pytest.fixture
def free_event(api: Api) -> uuid.UUID:
    a = api.world.a
    api.execute(
        "insert into events (org_id, workos_user_id, name, slug, duration_in_minutes, price)"
        " values (:o, :u, 'Free intro', 'free-intro', 30, 0)",
        o=a.org_id,
        u=a.expert,
    )
    [row] = api.rows("select id from events where slug = 'free-intro' and org_id = :o", o=a.org_id)
    return uuid.UUID(str(row["id"]))


async def book_guest(api: Api, event: uuid.UUID, start: dt.datetime, **guest: str) -> str:
    r = await book(api, event, start, **{**GUEST, **guest})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_anonymous_guest_record_accesses_are_in_their_access_report(
    api: Api, free_event: uuid.UUID
) -> None:
    a = api.world.a
    meeting = await book_guest(api, free_event, monday(10))
    [m] = api.rows("select data_subject_id from meetings where id = :i", i=meeting)
    subject = m["data_subject_id"]
    assert subject.startswith("subj_")
    # The same mailbox, spelled differently, is the same subject; another one is not.
    second = await book_guest(api, free_event, monday(11), guest_email="ana.guest@example.test")
    third = await book_guest(api, free_event, monday(12), guest_email="someone@example.test")
    subjects = {
        r["id"]: r["data_subject_id"]
        for r in api.rows(
            "select id, data_subject_id from meetings where data_subject_id is not null"
        )
    }
    assert subjects[uuid.UUID(second)] == subject and subjects[uuid.UUID(third)] != subject
    # The directory keeps no e-mail in clear.
    stored = api.rows("select * from data_subjects where subject_id = :s", s=subject)
    assert len(stored) == 1 and "example" not in str(stored).lower()

    records = f"/api/appointments/{meeting}/records"
    expert = api.auth(a.expert, a.org_id)
    r = await api.client.post(records, json={"content": "note"}, headers=expert)
    assert r.status_code == 201, r.text
    assert (await api.client.get(records, headers=expert)).status_code == 200
    # A colleague who may not read it is refused, and the refusal names the patient too.
    denied = await api.client.get(records, headers=api.auth(a.member, a.org_id))
    assert denied.status_code == 404

    report = await api.client.get(
        "/api/audit/access-report",
        params={"subject": subject},
        headers={"Authorization": f"Bearer {api.token(a.owner, a.org_id, role='owner')}"},
    )
    assert report.status_code == 200, report.text
    seen = {(e["action"], e["outcome"]) for e in report.json()["entries"]}
    assert {
        ("APPOINTMENT_CREATED", "success"),
        ("MEDICAL_RECORD_CREATED", "success"),
        ("MEDICAL_RECORD_VIEWED", "success"),
        ("MEDICAL_RECORD_VIEWED", "denied"),
    } <= seen


async def test_workos_mode_makes_each_guest_a_workos_user(api: Api, free_event: uuid.UUID) -> None:
    with workos_standin() as workos:
        previous = api.runtime.subject_directory
        guests = WorkOSGuestUsers(WorkOSSettings(api_key=API_KEY, api_base=workos.url))
        with installed_subjects(SubjectDirectory(previous.token_key, guests)):
            first = await book_guest(api, free_event, monday(10))
            again = await book_guest(api, free_event, monday(11))
    [user] = workos.users.values()
    assert user["email"] == "ana.guest@example.test"
    assert (user["first_name"], user["last_name"]) == ("Ana", "Guest")
    rows = api.rows("select data_subject_id from meetings where id in (:a, :b)", a=first, b=again)
    assert {r["data_subject_id"] for r in rows} == {user["id"]}
    # One lookup and one creation: the second booking found the subject locally.
    assert [(m, p) for m, p, _ in workos.requests] == [
        ("GET", "/user_management/users"),
        ("POST", "/user_management/users"),
    ]
    [event] = api.audit("action = 'APPOINTMENT_CREATED' and resource_id = :m", m=first)
    assert event["data_subject_id"] == user["id"]
