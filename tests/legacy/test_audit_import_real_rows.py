"""The legacy import against the real legacy table and rows shaped like its real call sites.

``fixtures/legacy_audit/audit_logs.sql`` is the separate audit database exactly as its ORM
schema created it, with 30 rows from three code eras: generic verbs on table names, the legacy
vocabulary with Clerk ids, and WorkOS ids written into ``clerkUserId`` after the cut-over;
camelCase PHI (``guestEmail``, ``guestName``, ``guestNotes``, ``expertName``), deletions whose
``new_values`` is a bare JSON string, multi-hop ``X-Forwarded-For`` values, placeholder actors,
``MEETING_CREATED`` carrying the event type's id. The target is a fresh migrated database with
the two-tenant world; nothing is mocked. "No PHI in clear" is checked on a ``pg_dump`` of the
whole target database taken as superuser.
"""

from __future__ import annotations

import re
import shutil
import string
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from carelog.audit.api import AuditService, configure_audit
from carelog.audit.report import access_report
from carelog.audit.setup import create_audit_service
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.legacy.audit_import import (
    IdentityResolver,
    ImportReport,
    LegacyAuditImporter,
    LegacySource,
    Vocabulary,
    legacy_event_id,
    read_user_map,
)
from carelog.platform.audit_catalog import LEGACY_RESOURCE_TYPES, build_catalog
from dbtools import TestServer
from world import World, build_world

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_audit" / "audit_logs.sql"
CLERK_EXPERT = "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"
CLERK_MEMBER = "user_2Q3a9kPpbIuVx4WmYcTz8LfR1oS"
WORKOS_EXPERT = "user_01HQ8Z5R6W3K9M2N4P7T1V0XYZ"
WORKOS_LATE = "user_01HQ9A0B1C2D3E4F5G6H7J8K9M"  # not in the target until the second run
#: Every personal value the fixture rows carry (names, e-mails, clinical notes).
PHI = (
    "maria.duarte@example.pt",
    "Maria Inês Duarte",
    "sertraline",
    "Stopped sertraline",
    "panic attacks",
    "joao.pereira@example.pt",
    "João Pereira",
    "penicillin",
    "rui.santos@example.pt",
    "Rui Santos",
    "metformin",
    "carla.mendes@example.pt",
    "Carla Mendes",
    "iron supplements",
    "Ana Rita Costa",
    "lorazepam",
    "paula.lima@example.pt",
    "Chemotherapy",
)
SOURCE_ROWS = 30
QUARANTINED = {  # legacy id → reason prefix (first run)
    28: "unmapped user",
    29: "unresolved placeholder actor",
    30: "unknown action",
}


@dataclass
class Env:
    db: Database
    world: World
    service: AuditService
    pg: TestServer
    legacy_url: str
    user_map: Path
    ids: dict[str, Any]

    def importer(self) -> LegacyAuditImporter:
        source = LegacySource.open(self.legacy_url)
        return LegacyAuditImporter(
            target=self.db,
            source=source,
            resolver=IdentityResolver(read_user_map(self.user_map), {}, None),
            vocabulary=Vocabulary(self.service.catalog, LEGACY_RESOURCE_TYPES),
            masker=self.service.masker,
            show_progress=False,
            batch_size=8,
        )

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.db.sync_engine("admin").connect() as conn:
            return list(conn.execute(sa.text(sql), params).mappings())

    def event(self, report: ImportReport, legacy_id: int) -> Any:
        found = self.rows(
            "select * from audit_logs where id = :id",
            id=legacy_event_id(report.fingerprint, legacy_id),
        )
        assert len(found) == 1, legacy_id
        return found[0]


def _target_ids(db: Database, world: World) -> dict[str, Any]:
    a, b = world.a, world.b
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text("insert into users (workos_user_id, email) values (:u, 'ana@clinic.test')"),
            {"u": WORKOS_EXPERT},
        )
        conn.execute(
            sa.text(
                "insert into user_org_memberships (workos_user_id, org_id, role) "
                "values (:u, :o, 'member')"
            ),
            {"u": WORKOS_EXPERT, "o": a.org_id},
        )

        def one(sql: str, **params: Any) -> Any:
            return conn.execute(sa.text(sql), params).scalar_one()

        return {
            "event_a": a.ids["public_event"],
            "event_public_a": a.ids["public_event"],
            "event_private_a": a.ids["event"],
            "event_public_b": b.ids["public_event"],
            "schedule_a": a.ids["schedule"],
            "meeting_a": a.ids["meeting"],
            "meeting_b": b.ids["meeting"],
            "missing_meeting": "0b8f2a8e-63a4-4d55-9d4e-9a3c1f0e7d21",
            "record_a": one("select id from records where org_id = :o", o=a.org_id),
            "profile_a": one("select id from profiles where workos_user_id = :u", u=a.expert),
            "meeting_a_start": one(
                "select start_time from meetings where id = :m", m=a.ids["meeting"]
            ).isoformat(),
        }


@pytest.fixture
def legacy_db(pg: TestServer) -> Iterator[tuple[str, sa.Engine]]:
    name = pg.create_database()
    url = pg.admin_url.set(database=name)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    yield url.render_as_string(hide_password=False), engine
    engine.dispose()
    pg.drop_database(name)


@pytest.fixture
async def env(
    fresh_db: Database, pg: TestServer, legacy_db: tuple[str, sa.Engine], tmp_path: Path
) -> AsyncIterator[Env]:
    world = build_world(fresh_db.sync_engine("admin"))
    ids = _target_ids(fresh_db, world)
    legacy_url, engine = legacy_db
    sql = string.Template(FIXTURE.read_text()).substitute({k: str(v) for k, v in ids.items()})
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    user_map = tmp_path / "users.csv"
    a = world.a
    user_map.write_text(
        "clerk_user_id,workos_user_id,org_id\n"
        f"{CLERK_EXPERT},{a.expert},{a.org_id}\n{CLERK_MEMBER},{a.member},{a.org_id}\n"
    )
    service = create_audit_service(fresh_db, build_catalog(), spool_dir=tmp_path / "spool")
    configure_audit(service)
    try:
        yield Env(fresh_db, world, service, pg, legacy_url, user_map, ids)
    finally:
        configure_audit(None)
        await fresh_db.dispose()


def _pg_dump(db: Database) -> str:
    """The whole target database as SQL, dumped as superuser with a pg_dump of its version."""
    url = db.admin_url
    with db.sync_engine("admin").connect() as conn:
        major = int(conn.exec_driver_sql("show server_version_num").scalar_one()) // 10000
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")]
    try:
        import pgserver  # type: ignore[import-untyped]

        candidates.insert(0, Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump")
    except ImportError:  # pragma: no cover - pgserver is a dev dependency
        pass
    found = shutil.which("pg_dump")
    candidates += [Path(found)] if found else []
    for binary in candidates:
        if not binary.exists():
            continue
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        match = re.search(r"(\d+)\.", version)
        if match and int(match.group(1)) == major:
            break
    else:  # pragma: no cover - depends on the machine
        pytest.skip(f"no pg_dump for PostgreSQL {major}")
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(
        [binary, "--no-owner", "--dbname", conninfo], capture_output=True, text=True, check=True
    )
    return done.stdout


def _assert_no_phi_anywhere(db: Database) -> str:
    dump = _pg_dump(db)
    assert "COPY public.audit_logs" in dump or "audit_logs" in dump
    leaked = [value for value in PHI if value.lower() in dump.lower()]
    assert leaked == [], f"personal values in clear in the database: {leaked}"
    return dump


@pytest.mark.slow
async def test_real_rows_import_and_nothing_personal_is_left_in_clear(env: Env) -> None:
    report = env.importer().run()
    c = report.counts
    assert (c.source_rows, c.imported, c.quarantined, c.already_present) == (SOURCE_ROWS, 27, 3, 0)
    assert c.adds_up() and c.table_agrees() and c.open_quarantine == 3
    quarantine = {r["legacy_id"]: r for r in env.rows("select * from legacy_audit_quarantine")}
    assert set(quarantine) == set(QUARANTINED)
    for legacy_id, reason in QUARANTINED.items():
        assert quarantine[legacy_id]["reason"].startswith(reason + ":"), quarantine[legacy_id]
    dump = _assert_no_phi_anywhere(env.db)  # events, quarantine rows, run records: all of it
    assert "masked:hmac-sha256:" in dump and "User requested deletion" in dump

    a, b = env.world.a, env.world.b
    actions = {
        r["metadata"]["legacy_id"]: (r["action"], r["resource_type"])
        for r in env.rows("select action, resource_type, metadata from audit_logs")
        if r["metadata"] and "legacy_id" in r["metadata"]
    }
    # first era: generic verbs on table names
    assert [actions[i] for i in range(1, 9)] == [
        ("EVENT_TYPE_CREATED", "event_type"),
        ("EVENT_TYPE_UPDATED", "event_type"),
        ("SCHEDULE_UPDATED", "schedule"),
        ("SCHEDULE_UPDATED", "schedule"),
        ("APPOINTMENT_CREATED", "appointment"),
        ("APPOINTMENT_UPDATED", "appointment"),
        ("APPOINTMENT_CANCELLED", "appointment"),
        ("EVENT_TYPE_DELETED", "event_type"),
    ]
    bulk = env.event(report, 23)  # a real bulk PHI read
    assert (bulk["action"], bulk["resource_type"], bulk["resource_id"]) == (
        "MEDICAL_RECORD_VIEWED",
        "medical_record",
        None,
    )
    assert bulk["metadata"]["bulk_read_of_expert"] == WORKOS_EXPERT
    assert bulk["data_subject_id"] == a.patient

    # deletions: the bare JSON string is the reason
    for legacy_id in (7, 8, 11):
        deleted = env.event(report, legacy_id)
        assert deleted["metadata"]["reason"] == "User requested deletion"
        assert deleted["new_values"] is None
    assert env.event(report, 7)["old_values"]["guestEmail"].startswith("masked:hmac-sha256:")

    # WorkOS ids in the Clerk column; placeholders resolved per row from the resource
    assert env.event(report, 24)["workos_user_id"] == WORKOS_EXPERT
    assert env.event(report, 24)["org_id"] == a.org_id
    unknown = env.event(report, 21)
    assert (unknown["workos_user_id"], unknown["org_id"]) == (
        "system:legacy-unknown-actor",
        b.org_id,
    )
    assert unknown["actor_type"] == "system"
    no_expert = env.event(report, 22)
    assert no_expert["org_id"] == b.org_id and no_expert["data_subject_id"] == b.patient
    assert no_expert["workos_user_id"] == "system:stripe-webhook"
    webhook = env.event(report, 20)
    assert (webhook["workos_user_id"], webhook["org_id"]) == ("system:stripe-webhook", a.org_id)
    assert webhook["action"] == "APPOINTMENT_PAYMENT_FAILED"
    assert webhook["metadata"]["legacy_clerk_user_id"] == CLERK_EXPERT

    # resources labelled by what they are
    booked = env.event(report, 13)  # MEETING_CREATED carried the event type's id
    assert booked["resource_type"] == "appointment"
    assert booked["resource_id"] == str(a.ids["meeting"])
    assert booked["metadata"]["event_type_id"] == str(a.ids["public_event"])
    assert booked["data_subject_id"] == a.patient
    unbooked = env.event(
        report, 25
    )  # no such meeting in the target: no id is better than a wrong one
    assert unbooked["resource_id"] is None
    assert unbooked["metadata"]["event_type_id"] == str(a.ids["public_event"])
    read = env.event(report, 17)  # READ_MEDICAL_RECORDS_FOR_MEETING: that meeting's records
    assert (read["action"], read["resource_type"], read["resource_id"]) == (
        "MEDICAL_RECORD_VIEWED",
        "appointment",
        str(a.ids["meeting"]),
    )
    denied = env.event(report, 19)
    assert (denied["outcome"], denied["workos_user_id"]) == ("denied", a.member)
    phi_events = env.rows(
        "select metadata->>'legacy_id' as id, data_subject_id from audit_logs "
        "where source = 'imported' and action like 'MEDICAL_RECORD%'"
    )
    assert len(phi_events) == 7
    assert {r["data_subject_id"] for r in phi_events} == {a.patient}

    # the patient's access report finds the imported history
    async with Scopes(env.db).org_scope(a.owner, a.org_id) as session:
        entries = await access_report(session, a.org_id, a.patient)
    legacy_actions = {e.action for e in entries}
    assert {"MEDICAL_RECORD_VIEWED", "MEDICAL_RECORD_CREATED", "MEDICAL_RECORD_UPDATED"} <= (
        legacy_actions
    )

    # multi-hop X-Forwarded-For keeps the client hop
    for legacy_id, client in ((5, "198.51.100.23"), (9, "203.0.113.10"), (25, "192.0.2.44")):
        hop = env.event(report, legacy_id)
        assert str(hop["ip_address"]) == client
        assert "," in hop["metadata"]["legacy_ip"]


@pytest.mark.slow
async def test_later_run_resolves_quarantine_and_reconciliation_agrees(env: Env) -> None:
    first = env.importer().run()
    assert first.counts.quarantined == 3
    with env.db.sync_engine("admin").begin() as conn:  # the missing WorkOS user is onboarded
        conn.execute(
            sa.text("insert into users (workos_user_id, email) values (:u, 'late@clinic.test')"),
            {"u": WORKOS_LATE},
        )
        conn.execute(
            sa.text(
                "insert into user_org_memberships (workos_user_id, org_id, role) "
                "values (:u, :o, 'member')"
            ),
            {"u": WORKOS_LATE, "o": env.world.a.org_id},
        )
    second = env.importer().run()
    c = second.counts
    assert (c.imported, c.already_present, c.quarantined, c.resolved) == (1, 27, 2, 1)
    assert c.adds_up() and c.open_quarantine == 2 and c.table_agrees()
    rows = {r["legacy_id"]: r for r in env.rows("select * from legacy_audit_quarantine")}
    assert rows[28]["resolved_at"] is not None and rows[28]["resolved_run_id"] == second.run_id
    assert all(rows[i]["resolved_at"] is None for i in (29, 30))
    late = env.event(second, 28)
    assert (late["workos_user_id"], late["data_subject_id"]) == (WORKOS_LATE, env.world.a.patient)
    stored = env.rows("select counts from legacy_import_runs where id = :id", id=second.run_id)
    assert stored[0]["counts"]["resolved"] == 1 and stored[0]["counts"]["open_quarantine"] == 2
    third = env.importer().run()  # nothing left to resolve: still agrees
    assert (third.counts.resolved, third.counts.open_quarantine) == (0, 2)
    _assert_no_phi_anywhere(env.db)
