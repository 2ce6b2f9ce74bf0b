"""Retention on a real database: policies, legal holds, purges, partition drops, the CLI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from carelog.audit.api import configure_audit
from carelog.audit.catalog import ActionSpec, AuditCatalog
from carelog.audit.errors import AuditInputError
from carelog.audit.retention import (
    DEFAULT_RETENTION_DAYS,
    RetentionResult,
    active_holds,
    apply_retention,
    effective_policies,
    place_hold,
    release_hold,
    set_policy,
)
from carelog.audit.setup import create_audit_service
from carelog.cli import retention_commands
from carelog.core.errors import ConfigurationError
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog

CATALOG = AuditCatalog.build(
    [
        ActionSpec("RECORD_VIEWED", "clinical", "read", phi=True),
        ActionSpec("PAYMENT_SUCCEEDED", "billing"),
    ],
    ["record", "payment"],
)
NOW = datetime.now(UTC)
YEAR = timedelta(days=365)


@dataclass
class Org:
    id: uuid.UUID
    owner: str


def make_org(db: Database, key: str) -> Org:
    org = Org(uuid.uuid4(), f"user_{key}_{uuid.uuid4().hex[:6]}")
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into organizations (id, workos_org_id, slug, name, type) "
                "values (:id, :w, :s, :n, 'clinic')"
            ),
            {"id": org.id, "w": f"org_{org.id.hex}", "s": f"c-{org.id.hex[:12]}", "n": key},
        )
        conn.execute(
            sa.text("insert into users (workos_user_id, email) values (:u, :e)"),
            {"u": org.owner, "e": f"{org.owner}@example.test"},
        )
        conn.execute(
            sa.text(
                "insert into user_org_memberships (workos_user_id, org_id, role) "
                "values (:u, :o, 'owner')"
            ),
            {"u": org.owner, "o": org.id},
        )
    return org


def add_event(
    db: Database,
    org: Org,
    action: str,
    created_at: datetime,
    *,
    subject: str | None = None,
) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
                "resource_type, data_subject_id, created_at) "
                "values (:id, :org, :actor, 'user', :action, 'record', :subject, :at)"
            ),
            {
                "id": event_id,
                "org": org.id,
                "actor": org.owner,
                "action": action,
                "subject": subject,
                "at": created_at,
            },
        )
    return event_id


def remaining(db: Database, org: Org) -> set[uuid.UUID]:
    """The org's seeded events (the records of policy and hold changes are not counted)."""
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text(
                "select id from audit_logs where org_id = :o and action not in "
                "('AUDIT_RETENTION_POLICY_CHANGED', 'AUDIT_LEGAL_HOLD_PLACED', "
                "'AUDIT_LEGAL_HOLD_RELEASED')"
            ),
            {"o": org.id},
        )
        return set(rows.scalars())


def governance_events(db: Database, org: Org) -> list[tuple[str, str]]:
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text(
                "select action, workos_user_id from audit_logs where org_id = :o and action in "
                "('AUDIT_RETENTION_POLICY_CHANGED', 'AUDIT_LEGAL_HOLD_PLACED', "
                "'AUDIT_LEGAL_HOLD_RELEASED') order by created_at, id"
            ),
            {"o": org.id},
        )
        return [(str(a), str(u)) for a, u in rows.all()]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[uuid.UUID, dict[str, Any]]] = []

    async def __call__(self, org_id: uuid.UUID, metadata: Mapping[str, Any]) -> None:
        self.events.append((org_id, dict(metadata)))


@pytest.fixture
async def audit_service_running(fresh_db: Database, tmp_path: Path) -> AsyncIterator[None]:
    service = create_audit_service(fresh_db, build_catalog(), spool_dir=tmp_path / "spool")
    configure_audit(service)
    await service.start()
    try:
        yield
    finally:
        await service.stop()
        configure_audit(None)


async def purge(
    scopes: Scopes,
    orgs: list[Org],
    *,
    dry_run: bool = False,
    every_org: bool = False,
    recorder: Recorder | None = None,
) -> RetentionResult:
    return await apply_retention(
        scopes,
        CATALOG,
        orgs=[o.id for o in orgs],
        dry_run=dry_run,
        every_org=every_org,
        emit=recorder or Recorder(),
    )


# --------------------------------------------------------------------------- policies


async def test_default_and_explicit_policies(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    async with scopes.org_scope(org.owner, org.id) as s:
        assert await effective_policies(s, org.id, CATALOG) == {
            "billing": DEFAULT_RETENTION_DAYS,
            "clinical": DEFAULT_RETENTION_DAYS,
            "compliance": DEFAULT_RETENTION_DAYS,
            "*": DEFAULT_RETENTION_DAYS,
        }
        await set_policy(s, org.id, "*", 4000, org.owner)
        await set_policy(s, org.id, "billing", 30, org.owner, catalog=CATALOG)
        await set_policy(s, org.id, "billing", 40, org.owner, catalog=CATALOG)  # upsert
        policies = await effective_policies(s, org.id, CATALOG)
    assert policies == {"billing": 40, "clinical": 4000, "compliance": 4000, "*": 4000}


@pytest.mark.parametrize(
    ("category", "days"), [("nonsense", 10), ("billing", 0), ("*", -1), ("*", True)]
)
async def test_bad_policies_are_refused(
    fresh_db: Database, scopes: Scopes, category: str, days: int, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    with pytest.raises(AuditInputError):
        async with scopes.org_scope(org.owner, org.id) as s:
            await set_policy(s, org.id, category, days, org.owner, catalog=CATALOG)


# --------------------------------------------------------------------------- purges


async def test_default_policy_purges_only_events_older_than_six_years(
    fresh_db: Database, scopes: Scopes
) -> None:
    org = make_org(fresh_db, "a")
    old = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 7 * YEAR)
    young = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 5 * YEAR)
    fresh = add_event(fresh_db, org, "PAYMENT_SUCCEEDED", NOW - timedelta(days=2))
    recorder = Recorder()
    result = await purge(scopes, [org], recorder=recorder)
    assert result.orgs[0].deleted == {"clinical": 1}
    assert remaining(fresh_db, org) == {young, fresh}
    assert old not in remaining(fresh_db, org)
    # the purge is recorded once, after it committed, with what it did
    assert len(recorder.events) == 1
    org_id, meta = recorder.events[0]
    assert org_id == org.id
    assert meta["category"] == "clinical" and meta["deleted"] == 1
    assert datetime.fromisoformat(meta["cutoff"]) < NOW - 6 * YEAR
    assert meta["dropped_partitions"] == []


async def test_category_policy_shortens_that_category_only(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    async with scopes.org_scope(org.owner, org.id) as s:
        await set_policy(s, org.id, "billing", 30, org.owner, catalog=CATALOG)
    pay = add_event(fresh_db, org, "PAYMENT_SUCCEEDED", NOW - timedelta(days=60))
    view = add_event(fresh_db, org, "RECORD_VIEWED", NOW - timedelta(days=60))
    result = await purge(scopes, [org])
    assert result.orgs[0].deleted == {"billing": 1}
    assert remaining(fresh_db, org) == {view}
    assert pay not in remaining(fresh_db, org)


async def test_org_wide_hold_blocks_everything_until_released(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    old = {add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR, subject=s) for s in "xy"}
    async with scopes.org_scope(org.owner, org.id) as s:
        hold = await place_hold(s, org.id, "litigation", org.owner)
    recorder = Recorder()
    result = await purge(scopes, [org], recorder=recorder)
    assert result.orgs[0].plan.org_hold
    assert result.orgs[0].total_deleted == 0
    assert remaining(fresh_db, org) == old
    # the attempt is on record even though the hold kept everything
    assert [m["deleted"] for _, m in recorder.events] == [0]
    assert recorder.events[0][1]["held"] == 2

    async with scopes.org_scope(org.owner, org.id) as s:
        await release_hold(s, org.id, hold, org.owner)
        assert await active_holds(s, org.id) == []
    result = await purge(scopes, [org])
    assert result.orgs[0].total_deleted == 2
    assert remaining(fresh_db, org) == set()
    # placing and lifting the hold are on the trail, in the admin's name
    assert governance_events(fresh_db, org) == [
        ("AUDIT_LEGAL_HOLD_PLACED", org.owner),
        ("AUDIT_LEGAL_HOLD_RELEASED", org.owner),
    ]


async def test_subject_hold_keeps_only_that_subjects_events(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    kept = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR, subject="patient_1")
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR, subject="patient_2")
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR)
    async with scopes.org_scope(org.owner, org.id) as s:
        hold = await place_hold(s, org.id, "subject request", org.owner, "patient_1")
        holds = await active_holds(s, org.id)
    assert [h.id for h in holds] == [hold]
    result = await purge(scopes, [org])
    assert result.orgs[0].deleted == {"clinical": 2}
    assert result.orgs[0].plan.categories[1].held == 1
    assert remaining(fresh_db, org) == {kept}


async def test_releasing_an_unknown_or_released_hold_is_an_error(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    async with scopes.org_scope(org.owner, org.id) as s:
        hold = await place_hold(s, org.id, "audit", org.owner)
        await release_hold(s, org.id, hold, org.owner)
    with pytest.raises(AuditInputError):
        async with scopes.org_scope(org.owner, org.id) as s:
            await release_hold(s, org.id, hold, org.owner)


async def test_dry_run_deletes_nothing_and_predicts_the_real_run(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    async with scopes.org_scope(org.owner, org.id) as s:
        await set_policy(s, org.id, "billing", 10, org.owner, catalog=CATALOG)
        await place_hold(s, org.id, "subject request", org.owner, "held")
    for i in range(3):
        add_event(fresh_db, org, "PAYMENT_SUCCEEDED", NOW - timedelta(days=20 + i))
    add_event(fresh_db, org, "PAYMENT_SUCCEEDED", NOW - timedelta(days=20), subject="held")
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 7 * YEAR)
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 2 * YEAR)
    before = remaining(fresh_db, org)
    recorder = Recorder()
    dry = await purge(scopes, [org], dry_run=True, recorder=recorder)
    assert remaining(fresh_db, org) == before
    assert recorder.events == []
    predicted = {c.category: c.purgeable for c in dry.orgs[0].plan.categories if c.purgeable}
    assert predicted == {"billing": 3, "clinical": 1}
    real = await purge(scopes, [org])
    assert real.orgs[0].deleted == predicted
    assert len(before) - len(remaining(fresh_db, org)) == 4


async def test_other_organizations_are_untouched(fresh_db: Database, scopes: Scopes) -> None:
    a, b = make_org(fresh_db, "a"), make_org(fresh_db, "b")
    add_event(fresh_db, a, "RECORD_VIEWED", NOW - 8 * YEAR)
    b_old = add_event(fresh_db, b, "RECORD_VIEWED", NOW - 8 * YEAR)
    await purge(scopes, [a])
    assert remaining(fresh_db, a) == set()
    assert remaining(fresh_db, b) == {b_old}


# --------------------------------------------------------------------------- the function's gate


PURGE_CALLS = (
    "select app.audit_purge_expired()",
    "select app.audit_drop_expired_partitions()",
    "select * from app.audit_purge_plan()",
    "select app.audit_register_actions(array['RECORD_VIEWED'], array['x'])",
)
OLD_CUTOFF_CALLS = (
    "select app.audit_purge(array['RECORD_VIEWED'], now() - interval '2 days')",
    "select app.audit_drop_expired_partitions(now() - interval '2 days')",
)


async def test_request_and_webhook_roles_cannot_purge(
    fresh_db: Database, scopes: Scopes, attack_count: Any
) -> None:
    """Neither a person nor a webhook/job (system role) may run any purge function, and the
    caller-supplied-cutoff functions no longer exist for anyone."""
    org = make_org(fresh_db, "a")
    sealed = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 2 * YEAR)
    ran = 0
    for call in (*PURGE_CALLS, *OLD_CUTOFF_CALLS):
        for scope in (
            lambda: scopes.org_scope(org.owner, org.id),
            lambda: scopes.system_scope("system:retention", org.id),
        ):
            with pytest.raises(DBAPIError, match=r"permission denied|does not exist"):
                async with scope() as s:
                    await s.execute(sa.text(call))
            ran += 1
    assert remaining(fresh_db, org) == {sealed}
    attack_count("database roles: purge functions", ran)


async def test_maintenance_purge_takes_no_cutoff_and_keeps_what_policy_keeps(
    fresh_db: Database, scopes: Scopes, attack_count: Any
) -> None:
    """The maintenance role cannot pick a cut-off: a two-year-old event under the six-year
    default survives; the purge record names what went."""
    a, b = make_org(fresh_db, "a"), make_org(fresh_db, "b")
    add_event(fresh_db, a, "RECORD_VIEWED", NOW - 8 * YEAR)
    young = add_event(fresh_db, a, "RECORD_VIEWED", NOW - 2 * YEAR)
    b_old = add_event(fresh_db, b, "RECORD_VIEWED", NOW - 8 * YEAR)
    async with scopes.maintenance_scope("system:retention", a.id) as s:
        n = await s.scalar(sa.text("select app.audit_purge_expired()"))
        record = (
            (await s.execute(sa.text("select kind, removed, removed_count from audit_purges")))
            .mappings()
            .one()
        )
    assert n == 1
    assert dict(record) == {"kind": "events", "removed": {"RECORD_VIEWED": 1}, "removed_count": 1}
    assert remaining(fresh_db, a) == {young}
    assert remaining(fresh_db, b) == {b_old}
    with pytest.raises(DBAPIError, match="permission denied"):
        async with scopes.maintenance_scope("system:retention", a.id) as s:
            await s.execute(sa.text("delete from audit_purges"))
    attack_count("database roles: purge functions", 2)


async def test_audit_purge_function_honours_an_org_wide_hold(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    """The SQL function on its own (no Python in between) must delete nothing under a hold."""
    org = make_org(fresh_db, "a")
    old = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR)
    async with scopes.org_scope(org.owner, org.id) as s:
        await place_hold(s, org.id, "litigation", org.owner)
    async with scopes.maintenance_scope("system:retention", org.id) as s:
        assert len(await active_holds(s, org.id)) == 1  # the maintenance role sees the hold
        n = await s.scalar(sa.text("select app.audit_purge_expired()"))
        kinds = (await s.execute(sa.text("select kind from audit_purges"))).scalars().all()
    assert n == 0
    assert kinds == ["held"]
    assert remaining(fresh_db, org) == {old}


async def test_audit_purge_function_honours_a_subject_hold(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    kept = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR, subject="patient_1")
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR, subject="patient_2")
    async with scopes.org_scope(org.owner, org.id) as s:
        await place_hold(s, org.id, "subject request", org.owner, "patient_1")
    async with scopes.maintenance_scope("system:retention", org.id) as s:
        n = await s.scalar(sa.text("select app.audit_purge_expired()"))
    assert n == 1
    assert remaining(fresh_db, org) == {kept}


def test_the_purge_functions_owner_can_read_legal_holds(fresh_db: Database) -> None:
    """Root cause of the two tests above: both purge functions are SECURITY DEFINER and run as
    the owner, but audit_legal_holds has FORCEd RLS and no policy for the owner, so inside the
    functions every hold is invisible."""
    org = make_org(fresh_db, "a")
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit_legal_holds (org_id, reason, placed_by) values (:o, 'r', :u)"
            ),
            {"o": org.id, "u": org.owner},
        )
        conn.exec_driver_sql(f'SET LOCAL ROLE "{fresh_db.settings.roles.owner}"')
        seen = conn.execute(sa.text("select count(*) from audit_legal_holds")).scalar_one()
    assert seen == 1


# --------------------------------------------------------------------------- partitions


def ensure_partition(db: Database, month: str) -> None:
    owner = db.settings.roles.owner
    with db.sync_engine("admin").begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL ROLE "{owner}"')
        conn.execute(
            sa.text("select app.ensure_audit_partitions(cast(:m as date), 1)"), {"m": month}
        )


def partitions(db: Database) -> set[str]:
    with db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text(
                "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "where i.inhparent = 'public.audit_logs'::regclass"
            )
        )
        return set(rows.scalars())


async def test_expired_partition_is_dropped_but_not_one_with_a_held_row(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    ensure_partition(fresh_db, "2018-01-01")
    ensure_partition(fresh_db, "2018-02-01")
    assert {"audit_logs_y2018m01", "audit_logs_y2018m02"} <= partitions(fresh_db)
    a, b = make_org(fresh_db, "a"), make_org(fresh_db, "b")
    jan = datetime(2018, 1, 15, tzinfo=UTC)
    feb = datetime(2018, 2, 15, tzinfo=UTC)
    add_event(fresh_db, a, "RECORD_VIEWED", jan)
    add_event(fresh_db, a, "LEGACY_THING", jan)  # not in the catalog: leaves with its partition
    held = add_event(fresh_db, b, "RECORD_VIEWED", feb, subject="patient_1")
    add_event(fresh_db, b, "RECORD_VIEWED", feb)
    async with scopes.org_scope(b.owner, b.id) as s:
        await place_hold(s, b.id, "litigation", b.owner, "patient_1")

    dry = await purge(scopes, [a, b], dry_run=True, every_org=True)
    assert {"audit_logs_y2018m01", "audit_logs_y2018m02"} <= set(dry.partitions)
    assert {"audit_logs_y2018m01", "audit_logs_y2018m02"} <= partitions(fresh_db)

    recorder = Recorder()
    result = await purge(scopes, [a, b], every_org=True, recorder=recorder)
    assert "audit_logs_y2018m01" in result.partitions
    assert "audit_logs_y2018m02" not in result.partitions
    names = partitions(fresh_db)
    assert "audit_logs_y2018m01" not in names
    assert "audit_logs_y2018m02" in names
    assert remaining(fresh_db, a) == set()
    assert remaining(fresh_db, b) == {held}
    drops = [(o, m) for o, m in recorder.events if m["dropped_partitions"]]
    assert {o for o, _ in drops} == {a.id, b.id}  # each org reads the drop in its own trail
    assert all(m["dropped_partitions"] == ["audit_logs_y2018m01"] for _, m in drops)


async def test_partitions_are_left_alone_when_not_every_org_is_covered(
    fresh_db: Database, scopes: Scopes
) -> None:
    ensure_partition(fresh_db, "2018-01-01")
    a = make_org(fresh_db, "a")
    add_event(fresh_db, a, "RECORD_VIEWED", datetime(2018, 1, 15, tzinfo=UTC))
    result = await purge(scopes, [a])
    assert result.partition_cutoff is None and result.partitions == ()
    assert "audit_logs_y2018m01" in partitions(fresh_db)


# --------------------------------------------------------------------------- the real audit API


def purge_events(db: Database, org: Org) -> list[Any]:
    with db.sync_engine("admin").connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "select workos_user_id, actor_type, metadata from audit_logs "
                    "where org_id = :o and action = 'AUDIT_RETENTION_PURGED'"
                ),
                {"o": org.id},
            ).all()
        )


async def test_purge_is_recorded_through_the_audit_api(
    fresh_db: Database, scopes: Scopes, audit_service_running: None
) -> None:
    org = make_org(fresh_db, "a")
    add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR)
    await apply_retention(scopes, CATALOG, orgs=[org.id], dry_run=False)
    rows = purge_events(fresh_db, org)
    assert len(rows) == 1
    actor, actor_type, meta = rows[0]
    assert (actor, actor_type) == ("system:retention", "system")
    assert meta["deleted"] == 1 and meta["category"] == "clinical"
    # the record outlives the next purge: it is fresh and cut-offs are at least a day old
    await apply_retention(scopes, CATALOG, orgs=[org.id], dry_run=False)
    assert len(purge_events(fresh_db, org)) == 1


async def test_a_real_run_without_audit_service_deletes_nothing(
    fresh_db: Database, scopes: Scopes
) -> None:
    org = make_org(fresh_db, "a")
    old = add_event(fresh_db, org, "RECORD_VIEWED", NOW - 8 * YEAR)
    with pytest.raises(ConfigurationError):
        await apply_retention(scopes, CATALOG, orgs=[org.id], dry_run=False)
    assert remaining(fresh_db, org) == {old}


# --------------------------------------------------------------------------- the CLI


def _env(db: Database) -> dict[str, str]:
    return {
        "CARELOG_DATABASE_URL": db.admin_url.render_as_string(hide_password=False),
        "CARELOG_ROLE_PREFIX": db.settings.roles.owner.removesuffix("_owner"),
        "CARELOG_ENV": "test",
    }


def test_cli_show_and_dry_run(fresh_db: Database) -> None:
    org = make_org(fresh_db, "a")
    for _ in range(2):
        add_event(fresh_db, org, "AUDIT_LOG_EXPORTED", NOW - 8 * YEAR)
    add_event(fresh_db, org, "AUDIT_LOG_EXPORTED", NOW - YEAR)
    runner = CliRunner()
    shown = runner.invoke(retention_commands.app, ["show"], env=_env(fresh_db))
    assert shown.exit_code == 0, shown.output
    assert str(org.id) in shown.output
    assert "compliance" in shown.output
    assert str(DEFAULT_RETENTION_DAYS) in shown.output
    assert "legal holds: none" in shown.output

    dry = runner.invoke(
        retention_commands.app, ["apply", "--dry-run", "--org", str(org.id)], env=_env(fresh_db)
    )
    assert dry.exit_code == 0, dry.output
    assert "would purge 2 event(s)" in dry.output
    assert len(remaining(fresh_db, org)) == 3

    everyone = runner.invoke(retention_commands.app, ["apply", "--dry-run"], env=_env(fresh_db))
    assert everyone.exit_code == 0, everyone.output
    assert "partitions ending before" in everyone.output


def test_cli_apply_purges_and_records(fresh_db: Database, tmp_path: Path) -> None:
    org = make_org(fresh_db, "a")
    add_event(fresh_db, org, "AUDIT_LOG_EXPORTED", NOW - 8 * YEAR)
    young = add_event(fresh_db, org, "AUDIT_LOG_EXPORTED", NOW - YEAR)
    env = {**_env(fresh_db), "CARELOG_AUDIT_SPOOL_DIR": str(tmp_path / "spool")}
    env["CARELOG_DATA_DIR"] = str(tmp_path / "data")
    result = CliRunner().invoke(retention_commands.app, ["apply", "--org", str(org.id)], env=env)
    assert result.exit_code == 0, result.output
    assert "purged 1 event(s)" in result.output
    assert "partitions: not considered" in result.output
    left = remaining(fresh_db, org)
    assert young in left and len(left) == 2  # the young event and the purge's own record
    assert [m["deleted"] for _, _, m in purge_events(fresh_db, org)] == [1]
