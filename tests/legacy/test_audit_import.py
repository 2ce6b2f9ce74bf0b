"""The legacy audit import against a REAL legacy database (a second database on the same server).

The legacy database is built from ``LegacyBase`` / ``LegacyAuditBase`` (the Clerk-era schema and
the separate audit table) and filled with awkward rows; the target is a fresh migrated carelog
database with the two-tenant world. Nothing is mocked.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from carelog.audit.api import AuditService, configure_audit
from carelog.audit.setup import create_audit_service
from carelog.cli import legacy_commands
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.legacy.audit_import import (
    IdentityResolver,
    ImportCounts,
    ImportReport,
    LegacyAuditImporter,
    LegacySource,
    LegacySourceShapeError,
    LegacySourceUnavailableError,
    MappingFileError,
    Vocabulary,
    legacy_event_id,
    read_org_map,
    read_user_map,
    record_import_run,
)
from carelog.legacy.schema import LegacyAuditBase, LegacyBase
from carelog.platform.audit_catalog import LEGACY_RESOURCE_TYPES, build_catalog
from dbtools import TestServer
from world import World, build_world

T0 = datetime(2024, 3, 1, 9, 30, 0)  # naive, as the legacy stored it
# fixed ids: parametrize ids are built from the values, and xdist workers must agree on them
ORG_1 = uuid.UUID("1f0e6a52-3b9c-4d7e-8a21-5c4b3a291001")
ORG_2 = uuid.UUID("1f0e6a52-3b9c-4d7e-8a21-5c4b3a291002")
FILLERS = 25


# --------------------------------------------------------------------------- the legacy database


@pytest.fixture
def legacy_url(pg: TestServer) -> Iterator[str]:
    name = pg.create_database()
    url = pg.admin_url.set(database=name)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    LegacyBase.metadata.create_all(engine)
    LegacyAuditBase.metadata.create_all(engine)
    engine.dispose()
    yield url.render_as_string(hide_password=False)
    pg.drop_database(name)


def _fill(url: str, world: World) -> dict[str, int]:
    """Awkward legacy rows; returns the legacy id of each named row."""
    a = world.a
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for clerk, email in (
            ("clerk_patient_a", f"  {a.patient.upper()}@EXAMPLE.TEST "),  # case and spaces
            ("clerk_expert_a", f"{a.expert}@example.test"),
            ("clerk_nobody", "nobody@example.test"),
        ):
            conn.execute(
                sa.text('insert into users ("clerkUserId", email) values (:c, :e)'),
                {"c": clerk, "e": email},
            )

        def add(key: str, **row: Any) -> None:
            values = {
                "clerkUserId": "clerk_owner_a",
                "action": "EVENT_CREATED",
                "resource_type": "event",
                "resource_id": "evt-1",
                "old_values": None,
                "new_values": None,
                "ip_address": "203.0.113.9",
                "user_agent": "Mozilla/5.0",
                "created_at": T0,
                **row,
            }
            stmt = LegacyAuditBase.metadata.tables["audit_logs"].insert().returning(sa.column("id"))
            ids[key] = int(conn.execute(stmt, values).scalar_one())

        add("created", new_values={"name": "Physio", "price": 5000})
        add(
            "meeting_null_id",
            action="MEETING_CREATED",
            resource_type="meeting",
            resource_id=None,
            ip_address="2001:DB8:0:0::1",
            created_at=T0 + timedelta(hours=1),
        )
        add(
            "patient_read",
            clerkUserId="clerk_patient_a",
            action="READ_MEDICAL_RECORDS_FOR_MEETING",
            resource_type="medical_record",
            ip_address="SYSTEM_WEBHOOK",
            user_agent="Stripe Webhook",
        )
        add(
            "denied",
            clerkUserId="clerk_expert_a",
            action="FAILED_READ_MEDICAL_RECORDS_UNAUTHORIZED",
            resource_type="medical_record",
        )
        add("unknown_action", action="TELEPORTED")
        add("ghost", clerkUserId="user_ghost")
        add("no_personal_org", clerkUserId="clerk_nobody")
        add("duplicate", new_values={"name": "Physio", "price": 5000})  # same content as "created"
        add(
            "huge",
            action="EVENT_UPDATED",
            old_values={"blob": "a"},
            new_values={"blob": "x" * 70_000},
        )
        add("undated", created_at=None)
        add(
            "masked",
            action="MEETING_UPDATED",
            resource_type="meeting",
            old_values={"guest_email": "pat@example.test", "status": "booked"},
            new_values={"guest_email": "new@example.test", "status": "cancelled"},
        )
        add("unknown_type", resource_type="spaceship")
        add("not_an_object", new_values=["a", "list"])
        add("long_agent", action="PROFILE_PUBLISHED", resource_type="profile", user_agent="U" * 900)
        for i in range(FILLERS):
            add(
                f"filler{i}",
                action="PROFILE_PUBLISHED",
                resource_type="profile",
                resource_id=f"p{i}",
                created_at=T0 + timedelta(minutes=i),
            )
    engine.dispose()
    return ids


QUARANTINED = {
    "unknown_action": "unknown action",
    "ghost": "unmapped user",
    "no_personal_org": "unmapped user",
    "huge": "invalid data",
    "undated": "missing created_at",
    "unknown_type": "unknown resource type",
    "not_an_object": "invalid data",
}


# --------------------------------------------------------------------------- the target


@dataclass
class Env:
    db: Database
    world: World
    service: AuditService
    legacy_url: str
    ids: dict[str, int]
    user_map: Path
    org_map: Path

    def importer(self, **kw: Any) -> LegacyAuditImporter:
        catalog = self.service.catalog
        source = LegacySource.open(self.legacy_url)
        return LegacyAuditImporter(
            target=self.db,
            source=source,
            resolver=IdentityResolver(
                read_user_map(self.user_map),
                read_org_map(self.org_map),
                source.legacy_user_emails(),
            ),
            vocabulary=Vocabulary(catalog, LEGACY_RESOURCE_TYPES),
            masker=self.service.masker,
            show_progress=False,
            **{"batch_size": 10, **kw},
        )

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.db.sync_engine("admin").connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def imported(self) -> int:
        return int(self.scalar("select count(*) from audit_logs where source = 'imported'"))


@pytest.fixture
async def env(fresh_db: Database, legacy_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    world = build_world(fresh_db.sync_engine("admin"))
    service = create_audit_service(fresh_db, build_catalog(), spool_dir=tmp_path / "spool")
    ids = _fill(legacy_url, world)
    user_map = tmp_path / "users.csv"
    user_map.write_text(
        f"clerk_user_id,workos_user_id,org_id\nclerk_owner_a,{world.a.owner},{world.a.org_id}\n"
    )
    org_map = tmp_path / "orgs.csv"
    org_map.write_text(f"workos_user_id,org_id\n{world.a.expert},{world.a.org_id}\n")
    configure_audit(service)
    try:
        yield Env(fresh_db, world, service, legacy_url, ids, user_map, org_map)
    finally:
        configure_audit(None)
        await fresh_db.dispose()


TOTAL = 14 + FILLERS
EXPECTED_IMPORTED = TOTAL - len(QUARANTINED)


def _assert_counts(c: ImportCounts, *, imported: int, present: int) -> None:
    assert c.source_rows == TOTAL
    assert (c.imported, c.already_present, c.quarantined) == (imported, present, len(QUARANTINED))
    assert c.adds_up()


# --------------------------------------------------------------------------- tests


async def test_import_maps_keeps_and_quarantines(env: Env) -> None:
    report = env.importer().run()
    _assert_counts(report.counts, imported=EXPECTED_IMPORTED, present=0)
    a = env.world.a
    assert report.counts.imported_by_org == {
        str(a.org_id): EXPECTED_IMPORTED - 1,
        str(a.patient_org_id): 1,
    }
    assert env.imported() == EXPECTED_IMPORTED

    def event(key: str) -> Any:
        rows = env.rows(
            "select * from audit_logs where id = :id",
            id=legacy_event_id(report.fingerprint, env.ids[key]),
        )
        assert len(rows) == 1, key
        return rows[0]._mapping

    created = event("created")
    assert created["action"] == "EVENT_TYPE_CREATED"
    assert created["resource_type"] == "event_type"
    assert created["workos_user_id"] == a.owner and created["org_id"] == a.org_id
    assert created["actor_type"] == "user" and created["source"] == "imported"
    assert created["created_at"] == T0.replace(tzinfo=UTC)  # original time, naive read as UTC
    assert created["new_values"] == {"name": "Physio", "price": 5000}
    assert str(created["ip_address"]) == "203.0.113.9"
    assert created["metadata"]["legacy_action"] == "EVENT_CREATED"
    assert created["metadata"]["legacy_resource_type"] == "event"
    assert created["metadata"]["legacy_id"] == env.ids["created"]
    assert created["request_id"] is None

    meeting = event("meeting_null_id")
    assert meeting["resource_id"] is None and meeting["action"] == "APPOINTMENT_CREATED"
    assert str(meeting["ip_address"]) == "2001:db8::1"  # IPv6 kept (normalised)

    read = event("patient_read")  # mapped through the users table, personal organization
    # written by the Stripe webhook (SYSTEM_WEBHOOK / Stripe Webhook): a system actor
    assert read["workos_user_id"] == "system:stripe-webhook"
    assert read["org_id"] == a.patient_org_id
    assert read["metadata"]["legacy_clerk_user_id"] == "clerk_patient_a"
    assert read["action"] == "MEDICAL_RECORD_VIEWED"
    assert read["ip_address"] is None and read["metadata"]["legacy_ip"] == "SYSTEM_WEBHOOK"

    denied = event("denied")  # users table + --org-map; FAILED_*_UNAUTHORIZED → denied
    assert (denied["workos_user_id"], denied["org_id"]) == (a.expert, a.org_id)
    assert (denied["action"], denied["outcome"]) == ("MEDICAL_RECORD_VIEWED", "denied")

    masked = event("masked")  # minimised and masked like a live event
    assert masked["old_values"]["status"] == "booked"
    assert masked["new_values"]["status"] == "cancelled"
    for side in ("old_values", "new_values"):
        assert masked[side]["guest_email"].startswith("masked:hmac-sha256:")
    assert "example.test" not in str(masked["old_values"]) + str(masked["new_values"])

    duplicate = event("duplicate")  # same content, different legacy row: its own event
    assert duplicate["id"] != created["id"]

    agent = event("long_agent")
    assert len(agent["user_agent"]) == 512 and agent["metadata"]["legacy_user_agent_truncated"]

    # ordinary INSERTs: every imported row carries its batch transaction's id (the sealer's key)
    batches = env.scalar("select count(distinct txid) from audit_logs where source = 'imported'")
    assert 1 < batches <= -(-TOTAL // 10)

    quarantine = {
        r.legacy_id: r
        for r in env.rows("select legacy_id, reason, row, run_id from legacy_audit_quarantine")
    }
    assert {env.ids[k] for k in QUARANTINED} == set(quarantine)
    for key, reason in QUARANTINED.items():
        q = quarantine[env.ids[key]]
        assert q.reason.startswith(reason + ":"), (key, q.reason)
        assert q.run_id == report.run_id and q.row["id"] == env.ids[key]
    assert "cap" in quarantine[env.ids["huge"]].reason
    assert report.counts.quarantine_reasons == {
        "invalid data": 2,
        "missing created_at": 1,
        "unknown action": 1,
        "unknown resource type": 1,
        "unmapped user": 2,
    }

    status, counts = env.rows(
        "select status, counts from legacy_import_runs where id = :id", id=report.run_id
    )[0]
    assert status == "completed" and counts == report.counts.as_json()

    # the run itself is audited, once per organization that received events
    assert await record_import_run(report, Scopes(env.db)) == 2
    audits = env.rows(
        "select org_id, workos_user_id, actor_type, metadata from audit_logs "
        "where action = 'AUDIT_LOG_IMPORTED' order by org_id"
    )
    assert {r.org_id for r in audits} == {a.org_id, a.patient_org_id}
    assert all(
        r.workos_user_id == "system:legacy-import" and r.actor_type == "system" for r in audits
    )
    assert {r.metadata["run_id"] for r in audits} == {str(report.run_id)}


async def test_rerun_changes_nothing(env: Env) -> None:
    first = env.importer().run()
    before = env.scalar("select count(*) from audit_logs")
    second = env.importer(batch_size=7).run()
    _assert_counts(second.counts, imported=0, present=EXPECTED_IMPORTED)
    assert env.scalar("select count(*) from audit_logs") == before
    assert env.scalar("select count(*) from legacy_audit_quarantine") == len(QUARANTINED)
    assert await record_import_run(second, Scopes(env.db)) == 0  # nothing new, nothing to audit
    assert first.run_id != second.run_id
    assert env.scalar("select count(*) from legacy_import_runs where status = 'completed'") == 2


async def test_crash_after_first_batch_then_rerun_imports_each_row_once(env: Env) -> None:
    class SimulatedCrashError(RuntimeError):
        pass

    def crash(number: int, counts: ImportCounts) -> None:
        if number == 1:
            raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):
        env.importer(on_batch=crash).run()
    partial = env.imported()
    assert 0 < partial < EXPECTED_IMPORTED
    status, counts = env.rows("select status, counts from legacy_import_runs")[0]
    assert status == "failed" and counts["imported"] == partial

    report = env.importer().run()
    _assert_counts(report.counts, imported=EXPECTED_IMPORTED - partial, present=partial)
    assert env.imported() == EXPECTED_IMPORTED
    per_row = env.rows(
        "select metadata->>'legacy_id', count(*) from audit_logs where source = 'imported' "
        "group by 1 having count(*) <> 1"
    )
    assert per_row == []


async def test_dry_run_writes_nothing(env: Env) -> None:
    before = env.scalar("select count(*) from audit_logs")
    report = env.importer(dry_run=True).run()
    assert report.run_id is None and report.dry_run
    _assert_counts(report.counts, imported=EXPECTED_IMPORTED, present=0)
    assert env.scalar("select count(*) from audit_logs") == before
    assert env.scalar("select count(*) from legacy_audit_quarantine") == 0
    assert env.scalar("select count(*) from legacy_import_runs") == 0
    assert await record_import_run(report, Scopes(env.db)) == 0
    # after a real run, a dry run sees everything as already present
    env.importer().run()
    again = env.importer(dry_run=True).run()
    _assert_counts(again.counts, imported=0, present=EXPECTED_IMPORTED)


def test_cli_imports_and_prints_the_reconciliation(
    env: Env, pg: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = env.db.settings
    monkeypatch.setenv(
        "CARELOG_DATABASE_URL", env.db.admin_url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("CARELOG_ROLE_PREFIX", pg.prefix)
    monkeypatch.setenv("CARELOG_ENV", "test")
    monkeypatch.setenv("CARELOG_DATA_DIR", str(settings.data_dir))
    configure_audit(None)
    args = [
        "import-audit",
        "--source",
        env.legacy_url,
        "--user-map",
        str(env.user_map),
        "--org-map",
        str(env.org_map),
        "--batch",
        "8",
    ]
    result = CliRunner().invoke(legacy_commands.app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and env.imported() == 0
    result = CliRunner().invoke(legacy_commands.app, args)
    assert result.exit_code == 0, result.output
    assert "Counts add up" in result.output and "yes" in result.output
    assert env.imported() == EXPECTED_IMPORTED
    assert env.scalar("select count(*) from audit_logs where action = 'AUDIT_LOG_IMPORTED'") == 2


# --------------------------------------------------------------------------- clear errors


def test_unreachable_source_is_one_clear_error() -> None:
    with pytest.raises(LegacySourceUnavailableError) as info:
        LegacySource.open("postgresql://someone:secret@127.0.0.1:1/legacy")
    message = str(info.value)
    assert "cannot reach the legacy database" in message and "secret" not in message
    with pytest.raises(LegacySourceShapeError, match="not a database URL"):
        LegacySource.open("not a url")


def test_missing_table_and_wrong_shape(pg: TestServer) -> None:
    name = pg.create_database()
    url = pg.admin_url.set(database=name)
    raw = url.render_as_string(hide_password=False)
    try:
        with pytest.raises(LegacySourceShapeError, match="has no table 'audit_logs'"):
            LegacySource.open(raw)
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                'create table audit_logs (id serial primary key, "clerkUserId" text, '
                "action text, resource_type text, old_values jsonb, new_values jsonb, "
                "ip_address varchar(45), user_agent text, created_at text)"
            )
        engine.dispose()
        with pytest.raises(LegacySourceShapeError) as info:
            LegacySource.open(raw)
        message = str(info.value)
        assert "missing column(s) resource_id" in message
        assert "created_at is text (expected timestamp" in message
    finally:
        pg.drop_database(name)


def test_duplicate_legacy_ids_are_refused(pg: TestServer) -> None:
    name = pg.create_database()
    url = pg.admin_url.set(database=name)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    LegacyAuditBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("alter table audit_logs drop constraint audit_logs_pkey")
        for _ in range(2):
            conn.exec_driver_sql(
                'insert into audit_logs (id, "clerkUserId", action, resource_type) '
                "values (1, 'c', 'EVENT_CREATED', 'event')"
            )
    engine.dispose()
    try:
        source = LegacySource.open(url.render_as_string(hide_password=False))
        with pytest.raises(LegacySourceShapeError, match="share an id"):
            source.count()
        source.close()
    finally:
        pg.drop_database(name)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", ":1: the file is empty"),
        ("clerk,workos,org\n", ":1: header is"),
        ("clerk_user_id,workos_user_id,org_id\nc1,u1\n", ":2: 2 field(s), expected 3"),
        (
            "clerk_user_id,workos_user_id,org_id\n\nc1,u1,not-a-uuid\n",
            ":3: org_id 'not-a-uuid' is not a UUID",
        ),
        (
            f"clerk_user_id,workos_user_id,org_id\nc1,,{ORG_1}\n",
            ":2: empty workos_user_id",
        ),
        (
            f"clerk_user_id,workos_user_id,org_id\nc1,u1,{ORG_1}\nc1,u2,{ORG_2}\n",
            ":3: c1 is mapped twice",
        ),
    ],
)
def test_malformed_user_map_names_file_and_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(content)
    with pytest.raises(MappingFileError) as info:
        read_user_map(path)
    assert f"{path}{problem}" in str(info.value)


def test_malformed_org_map_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "orgs.csv"
    path.write_text(f"workos_user_id,org_id\nu1,{uuid.uuid4()}\nu1,{uuid.uuid4()}\n")
    with pytest.raises(MappingFileError, match=r"orgs.csv:3: u1 is mapped to two organizations"):
        read_org_map(path)
    with pytest.raises(MappingFileError, match="cannot be read"):
        read_org_map(tmp_path / "absent.csv")


def test_report_type_is_plain_data() -> None:
    report = ImportReport(
        None, "h:5432/db", ImportCounts(source_rows=1, quarantined=1), True, "dry-run"
    )
    assert report.counts.adds_up()
