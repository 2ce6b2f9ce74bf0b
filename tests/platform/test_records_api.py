"""Medical records over HTTP: encryption at rest, who may touch them, and the exact audit rows."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api

from carelog.audit.api import AuditService
from carelog.audit.events import Masker
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.db.engine import Database
from carelog.platform.audit_catalog import build_catalog

SECRET = "Patient reports chest pain; suspected angina (PHI-MARKER-7f3a)"
META = {"diagnosis": "angina PHI-META-91c2", "severity": 3}


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        yield env


def url(meeting: object) -> str:
    return f"/api/appointments/{meeting}/records"


async def create(api: Api, content: str = SECRET, metadata: object = META) -> dict[str, object]:
    a = api.world.a
    body: dict[str, object] = {"content": content}
    if metadata is not None:
        body["metadata"] = metadata
    r = await api.client.post(
        url(a.ids["meeting"]), json=body, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def assert_no_plaintext(api: Api) -> None:
    for table in ("audit_logs", "records", "audit_log_exports"):
        dump = json.dumps(
            [{k: str(v) for k, v in r.items()} for r in api.rows(f"select * from {table}")]
        )
        assert "PHI-MARKER" not in dump, table
        assert "PHI-META" not in dump, table


# --------------------------------------------------------------------------- success


async def test_create_encrypts_and_audits(api: Api) -> None:
    a = api.world.a
    created = await create(api)
    record_id = uuid.UUID(str(created["record_id"]))
    assert created["version"] == 1 and created["meeting_id"] == str(a.ids["meeting"])

    (row,) = api.rows("select * from records where id = :id", id=record_id)
    assert row["org_id"] == a.org_id and row["expert_id"] == a.expert
    assert row["guest_email"] is None
    assert row["encryption_method"] == "aes256gcm" and row["key_id"] == "test-k1"
    assert row["vault_encrypted_content"].startswith("v1.")
    ids = {"record_id": record_id, "meeting_id": a.ids["meeting"], "org_id": a.org_id}
    assert api.keyring.decrypt("test-k1", row["vault_encrypted_content"], **ids) == SECRET
    meta = api.keyring.decrypt("test-k1", row["vault_encrypted_metadata"], **ids)
    assert json.loads(meta) == META

    (event,) = api.audit("action = 'MEDICAL_RECORD_CREATED'")
    assert event["workos_user_id"] == a.expert and event["actor_type"] == "user"
    assert event["org_id"] == a.org_id
    assert event["data_subject_id"] == a.patient
    assert event["outcome"] == "success"
    assert event["resource_type"] == "medical_record"
    assert event["resource_id"] == str(record_id)
    assert event["metadata"]["meeting_id"] == str(a.ids["meeting"])
    assert event["metadata"]["metadata_provided"] is True
    assert str(event["ip_address"]) == "203.0.113.7"
    assert_no_plaintext(api)


async def test_expert_reads_and_the_view_is_audited(api: Api) -> None:
    a = api.world.a
    first = await create(api, content="first PHI-MARKER", metadata=None)
    second = await create(api)
    r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2
    assert [x["id"] for x in body["records"]] == [second["record_id"], first["record_id"]]
    assert body["records"][0]["content"] == SECRET
    assert body["records"][0]["metadata"] == META
    assert body["records"][1]["metadata"] is None
    assert "v1." not in r.text and "vault" not in r.text and "key_id" not in r.text

    (event,) = api.audit("action = 'MEDICAL_RECORD_VIEWED'")
    assert event["workos_user_id"] == a.expert and event["org_id"] == a.org_id
    assert event["data_subject_id"] == a.patient and event["outcome"] == "success"
    assert event["resource_type"] == "medical_record"
    assert event["resource_id"] == str(a.ids["meeting"])
    assert event["metadata"]["record_ids"] == [second["record_id"], first["record_id"]]
    assert event["metadata"]["count"] == 2
    assert event["metadata"]["viewer"] == "expert"
    assert_no_plaintext(api)


async def test_patient_reads_from_their_own_org(api: Api) -> None:
    a = api.world.a
    created = await create(api)
    r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.patient, a.patient_org_id))
    assert r.status_code == 200, r.text
    assert [x["content"] for x in r.json()["records"]] == [SECRET]

    (event,) = api.audit("action = 'MEDICAL_RECORD_VIEWED'")
    assert event["workos_user_id"] == a.patient
    assert event["org_id"] == a.patient_org_id
    assert event["data_subject_id"] == a.patient
    assert event["metadata"]["record_ids"] == [created["record_id"]]
    assert event["metadata"]["viewer"] == "patient"


async def test_update_increments_version_and_audits_the_change(api: Api) -> None:
    a = api.world.a
    created = await create(api)
    r = await api.client.put(
        url(a.ids["meeting"]),
        json={"record_id": created["record_id"], "content": "revised PHI-MARKER note"},
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2

    got = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.expert, a.org_id))
    (record,) = got.json()["records"]
    assert record["content"] == "revised PHI-MARKER note"
    assert record["metadata"] == META  # omitted metadata is kept (re-sealed under the key)
    assert record["version"] == 2

    (event,) = api.audit("action = 'MEDICAL_RECORD_UPDATED'")
    assert event["workos_user_id"] == a.expert and event["org_id"] == a.org_id
    assert event["data_subject_id"] == a.patient and event["outcome"] == "success"
    assert event["resource_id"] == created["record_id"]
    assert event["old_values"] == {"version": 1}
    assert event["new_values"] == {"version": 2}
    assert event["metadata"]["content_changed"] is True
    assert event["metadata"]["metadata_changed"] is False

    r = await api.client.put(
        url(a.ids["meeting"]),
        json={
            "record_id": created["record_id"],
            "content": "revised PHI-MARKER note",
            "metadata": {"severity": 1},
        },
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.json()["version"] == 3
    last = api.audit("action = 'MEDICAL_RECORD_UPDATED'")[-1]
    assert last["metadata"]["content_changed"] is False
    assert last["metadata"]["metadata_changed"] is True
    assert_no_plaintext(api)


async def test_concurrent_updates_lose_nothing(api: Api) -> None:
    a = api.world.a
    created = await create(api)

    async def put(text: str) -> int:
        r = await api.client.put(
            url(a.ids["meeting"]),
            json={"record_id": created["record_id"], "content": text},
            headers=api.auth(a.expert, a.org_id),
        )
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    versions = await asyncio.gather(*(put(f"edit {i}") for i in range(5)))
    assert sorted(versions) == [2, 3, 4, 5, 6]
    (row,) = api.rows("select version from records")
    assert row["version"] == 6
    events = api.audit("action = 'MEDICAL_RECORD_UPDATED'")
    assert sorted(e["new_values"]["version"] for e in events) == [2, 3, 4, 5, 6]


async def test_stale_expected_version_is_a_conflict(api: Api) -> None:
    a = api.world.a
    created = await create(api)
    body = {"record_id": created["record_id"], "content": "x", "expected_version": 1}
    ok = await api.client.put(
        url(a.ids["meeting"]), json=body, headers=api.auth(a.expert, a.org_id)
    )
    assert ok.status_code == 200
    stale = await api.client.put(
        url(a.ids["meeting"]), json=body, headers=api.auth(a.expert, a.org_id)
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["field"] == "expected_version"
    assert len(api.audit("action = 'MEDICAL_RECORD_UPDATED'")) == 1


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("post", {"content": ""}, "body.content"),
        ("post", {}, "body.content"),
        ("post", {"content": "x", "metadata": "not an object"}, "body.metadata"),
        ("post", {"content": "x", "expert_id": "someone"}, "body.expert_id"),
        ("put", {"record_id": "nope", "content": "x"}, "body.record_id"),
        (
            "put",
            {"record_id": str(uuid.uuid4()), "content": "x", "expected_version": 0},
            "body.expected_version",
        ),
    ],
)
async def test_validation_errors_name_the_field(
    api: Api, method: str, body: dict[str, object], field: str
) -> None:
    a = api.world.a
    r = await api.client.request(
        method.upper(), url(a.ids["meeting"]), json=body, headers=api.auth(a.expert, a.org_id)
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert api.audit("resource_type = 'medical_record'") == []


async def test_bad_meeting_id_is_422(api: Api) -> None:
    a = api.world.a
    r = await api.client.get(url("not-a-uuid"), headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "path.meeting_id"


# --------------------------------------------------------------------------- refusals


async def test_another_member_of_the_org_is_refused_and_audited(api: Api) -> None:
    a = api.world.a
    await create(api)
    before = api.rows("select count(*) as n from records")[0]["n"]
    r = await api.client.post(
        url(a.ids["meeting"]), json={"content": SECRET}, headers=api.auth(a.member, a.org_id)
    )
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "meeting_id"
    assert api.rows("select count(*) as n from records")[0]["n"] == before
    (event,) = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")
    assert event["action"] == "MEDICAL_RECORD_CREATED"
    assert event["workos_user_id"] == a.member and event["org_id"] == a.org_id
    assert event["data_subject_id"] == a.patient  # the patient's access report shows it
    assert event["resource_id"] == str(a.ids["meeting"])
    assert event["metadata"]["reason"] == "not_visible"

    # The org owner sees the meeting (admin) but is not its expert: no PHI for admins.
    r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.owner, a.org_id))
    assert r.status_code == 404
    assert SECRET not in r.text
    event = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")[-1]
    assert event["action"] == "MEDICAL_RECORD_VIEWED"
    assert event["workos_user_id"] == a.owner
    assert event["data_subject_id"] == a.patient
    assert event["metadata"]["reason"] == "not_a_participant"

    # The patient may read, never write.
    r = await api.client.put(
        url(a.ids["meeting"]),
        json={"record_id": str(uuid.uuid4()), "content": "x"},
        headers=api.auth(a.patient, a.patient_org_id),
    )
    assert r.status_code == 404
    event = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")[-1]
    assert event["action"] == "MEDICAL_RECORD_UPDATED"
    assert event["workos_user_id"] == a.patient and event["org_id"] == a.patient_org_id
    assert event["data_subject_id"] == a.patient
    assert_no_plaintext(api)


async def test_an_admin_who_sees_the_meeting_cannot_write_into_it(api: Api) -> None:
    """The owner sees the meeting (admin) but is not its expert: the statement that reads the
    parties inserts nothing for them, and the refusal is recorded as such."""
    a = api.world.a
    await create(api)
    before = api.rows("select count(*) as n from records")[0]["n"]
    r = await api.client.post(
        url(a.ids["meeting"]), json={"content": "owner's note"}, headers=api.auth(a.owner, a.org_id)
    )
    assert r.status_code == 404, r.text
    assert api.rows("select count(*) as n from records")[0]["n"] == before
    event = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")[-1]
    assert event["action"] == "MEDICAL_RECORD_CREATED"
    assert event["metadata"]["reason"] == "not_the_expert"
    assert event["data_subject_id"] == a.patient


async def test_the_read_statement_returns_no_ciphertext_to_a_non_party(api: Api) -> None:
    """The parties and the records are one statement; the records are joined only for a party.
    Run as the system role, which sees every record of the organization, so that the party
    condition (not RLS) is what is tested: the owner gets the parties row and no record, the
    expert gets the records."""
    from carelog.platform.records import queries

    a = api.world.a
    await create(api)
    meeting = a.ids["meeting"]
    async with api.runtime.scopes.system_scope("system:test", a.org_id) as unit:
        owner_rows = await queries.meeting_with_records(unit, meeting, a.owner, a.org_id)
        expert_rows = await queries.meeting_with_records(unit, meeting, a.expert, a.org_id)
        wrong_org = await queries.meeting_with_records(unit, meeting, a.expert, a.patient_org_id)
    assert len(owner_rows) == 1 and owner_rows[0].record_id is None
    assert owner_rows[0].vault_encrypted_content is None
    assert len(wrong_org) == 1 and wrong_org[0].record_id is None  # the expert, elsewhere
    assert expert_rows and all(r.vault_encrypted_content for r in expert_rows)


async def test_another_orgs_token_is_refused_and_audited(api: Api) -> None:
    a, b = api.world.a, api.world.b
    await create(api)
    for method in ("GET", "POST", "PUT"):
        body = None if method == "GET" else {"content": "x", "record_id": str(uuid.uuid4())}
        if method == "POST":
            body = {"content": "x"}
        r = await api.client.request(
            method, url(a.ids["meeting"]), json=body, headers=api.auth(b.expert, b.org_id)
        )
        assert r.status_code == 404, (method, r.text)
        assert SECRET not in r.text
    events = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")
    assert [e["action"] for e in events] == [
        "MEDICAL_RECORD_VIEWED",
        "MEDICAL_RECORD_CREATED",
        "MEDICAL_RECORD_UPDATED",
    ]
    for event in events:
        assert event["workos_user_id"] == b.expert
        assert event["org_id"] == b.org_id  # recorded in the caller's org, not the victim's
        assert event["resource_id"] == str(a.ids["meeting"])
        assert event["data_subject_id"] is None  # org A's patient is invisible from org B
    assert (
        api.audit(
            "org_id = :o and outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'",
            o=a.org_id,
        )
        == []
    )


async def test_unknown_meeting_and_record(api: Api) -> None:
    a = api.world.a
    ghost = uuid.uuid4()
    r = await api.client.get(url(ghost), headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 404
    (event,) = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")
    assert event["action"] == "MEDICAL_RECORD_VIEWED"
    assert event["resource_id"] == str(ghost)
    assert event["workos_user_id"] == a.expert and event["org_id"] == a.org_id
    assert event["data_subject_id"] is None

    missing = uuid.uuid4()
    r = await api.client.put(
        url(a.ids["meeting"]),
        json={"record_id": str(missing), "content": "x"},
        headers=api.auth(a.expert, a.org_id),
    )
    assert r.status_code == 404
    assert r.json()["error"]["field"] == "record_id"
    event = api.audit("outcome = 'denied' and action <> 'UNAUTHORIZED_ACCESS_ATTEMPT'")[-1]
    assert event["action"] == "MEDICAL_RECORD_UPDATED"
    assert event["resource_id"] == str(missing)
    assert event["data_subject_id"] == a.patient
    assert event["metadata"]["reason"] == "record_not_found"


# --------------------------------------------------------------------------- fail-closed


def _dead_writer(tmp_path: Path) -> tuple[AuditService, AuditWriter]:
    """An audit service whose writer is on a dead port, with a spool that cannot be written."""
    spool_dir = tmp_path / "broken-spool"
    spool = Spool(spool_dir)
    shutil.rmtree(spool_dir)
    spool_dir.write_text("not a directory")
    catalog = build_catalog()
    writer = AuditWriter(
        "postgresql://nobody@127.0.0.1:1/none", spool, deadline=0.2, connect_timeout=0.5
    )
    service = AuditService(
        catalog=catalog, masker=Masker(b"k" * 32, catalog.sensitive_fields), writer=writer
    )
    return service, writer


async def test_read_is_audited_in_its_own_transaction(fresh_db: Database, tmp_path: Path) -> None:
    """The view's event commits with the request's unit, before the response is sent: with
    the writer unreachable the read still works, and its event is stored when the client has
    the body. The streaming export (rows sent before its unit commits) still needs the writer
    and refuses with 503."""
    service, writer = _dead_writer(tmp_path)
    async with running_api(fresh_db, tmp_path, audit=service) as api:
        a = api.world.a
        await create(api)
        r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.expert, a.org_id))
        assert r.status_code == 200, r.text
        (event,) = api.audit("action = 'MEDICAL_RECORD_VIEWED'")
        assert event["workos_user_id"] == a.expert and event["outcome"] == "success"
        assert writer.stats.refused_fail_closed == 0

        owner = {"Authorization": f"Bearer {api.token(a.owner, a.org_id, role='owner')}"}
        export = await api.client.get("/api/audit/export", headers=owner)
        assert export.status_code == 503, export.text
        assert writer.stats.refused_fail_closed == 1


async def test_read_is_refused_when_the_view_cannot_be_committed(api: Api) -> None:
    """The view's event fails at COMMIT (a deferred trigger the superuser added): the GET
    answers an error with no record content, and neither the event nor anything else of the
    unit is stored. A disclosure is never acknowledged without its audit row."""
    a = api.world.a
    await create(api)
    api.execute(
        """
        create function pg_temp_refuse_view() returns trigger language plpgsql as $$
        begin
            if new.action = 'MEDICAL_RECORD_VIEWED' then
                raise exception 'audit storage refused the event at commit';
            end if;
            return null;
        end $$;
        create constraint trigger refuse_view after insert on audit_logs
            deferrable initially deferred for each row execute function pg_temp_refuse_view();
        """
    )
    r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.expert, a.org_id))
    assert r.status_code >= 500, r.text
    assert "PHI-MARKER" not in r.text and "PHI-META" not in r.text
    assert api.audit("action = 'MEDICAL_RECORD_VIEWED'") == []


async def test_key_rotation_reencrypts_and_is_audited(api: Api) -> None:
    from carelog.db.session import Scopes
    from carelog.platform.records import RecordKeyring
    from carelog.platform.records.rotation import ROTATION_ACTOR, rotate_org

    a = api.world.a
    created = await create(api)
    old = api.keyring
    new = RecordKeyring.parse(
        "test-k2:"
        + RecordKeyring.generate("x").export_text().split(":", 1)[1]
        + ","
        + old.export_text()
    )
    result = await rotate_org(Scopes(api.db), new, a.org_id)
    assert result.rotated == 1 and result.from_key_ids == {"test-k1"}
    (row,) = api.rows("select key_id, version from records")
    assert row == {"key_id": "test-k2", "version": 1}
    (event,) = api.audit("action = 'ENCRYPTION_KEY_ROTATED'")
    assert event["workos_user_id"] == ROTATION_ACTOR and event["actor_type"] == "system"
    assert event["org_id"] == a.org_id
    assert event["metadata"] == {"records": 1, "from_key_ids": ["test-k1"], "to_key_id": "test-k2"}
    # nothing left to rotate: a second run changes nothing and records nothing
    assert (await rotate_org(Scopes(api.db), new, a.org_id)).rotated == 0
    assert len(api.audit("action = 'ENCRYPTION_KEY_ROTATED'")) == 1

    api.runtime.record_keyring = RecordKeyring.parse(new.export_text().split(",")[0])
    r = await api.client.get(url(a.ids["meeting"]), headers=api.auth(a.expert, a.org_id))
    assert r.status_code == 200, r.text
    assert r.json()["records"][0]["id"] == created["record_id"]
    assert r.json()["records"][0]["content"] == SECRET
    assert r.json()["records"][0]["metadata"] == META
