"""Reports: every number equals a brute-force count; access reports list exactly the subject."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, timedelta

import pytest
from audit_rows import BASE, all_rows, event, insert, random_events

from carelog.audit.catalog import ActionSpec, AuditCatalog
from carelog.audit.errors import AuditInputError
from carelog.audit.report import UNCATEGORIZED, access_report, compliance_report
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import World, build_world

# LOGIN_FAILED is deliberately missing: events the catalog does not know still get counted.
CATALOG = AuditCatalog.build(
    [
        ActionSpec("MEDICAL_RECORD_VIEWED", "phi_access", "read", phi=True),
        ActionSpec("PROFILE_UPDATED", "profile", "write"),
        ActionSpec("MEETING_BOOKED", "booking", "write"),
    ],
    ["profile", "medical_record", "meeting"],
)
START = BASE + timedelta(days=4, hours=5)
END = BASE + timedelta(days=70)


@pytest.fixture
def world(fresh_db: Database) -> World:
    w = build_world(fresh_db.sync_engine("admin"))
    insert(
        fresh_db.sync_engine("admin"),
        random_events(w.a.org_id, 600, actors=[f"u{i}" for i in range(14)]),
    )
    insert(fresh_db.sync_engine("admin"), random_events(w.b.org_id, 100, seed=5))
    return w


async def test_compliance_report_matches_brute_force(
    fresh_db: Database, scopes: Scopes, world: World
) -> None:
    a = world.a
    rows = [
        r
        for r in all_rows(fresh_db.sync_engine("admin"), a.org_id)
        if START <= r["created_at"] < END
    ]
    categories = CATALOG.categories()
    phi = set(CATALOG.phi_actions())
    async with scopes.org_scope(a.owner, a.org_id) as session:
        report = await compliance_report(session, a.org_id, START, END, CATALOG, top_n=5)

    assert report.total == len(rows) > 100
    assert report.by_category == Counter(categories.get(r["action"], UNCATEGORIZED) for r in rows)
    assert UNCATEGORIZED in report.by_category
    assert report.by_outcome == Counter(r["outcome"] for r in rows)
    assert report.by_day == Counter(r["created_at"].astimezone(UTC).date() for r in rows)
    assert report.distinct_actors == len({r["workos_user_id"] for r in rows})
    assert report.phi_accesses == sum(r["action"] in phi for r in rows) > 0
    assert report.phi_subjects == len(
        {r["data_subject_id"] for r in rows if r["action"] in phi and r["data_subject_id"]}
    )
    assert report.denied == sum(r["outcome"] == "denied" for r in rows) > 0
    assert report.failures == sum(r["outcome"] == "failure" for r in rows) > 0
    actors = Counter(r["workos_user_id"] for r in rows)
    ranked = sorted(actors.items(), key=lambda kv: (-kv[1], kv[0]))
    assert report.top_actors == ranked[:5]


async def test_report_of_an_empty_period_is_zero(scopes: Scopes, world: World) -> None:
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        report = await compliance_report(
            session, world.a.org_id, BASE - timedelta(days=9), BASE - timedelta(days=8), CATALOG
        )
    assert (report.total, report.phi_accesses, report.denied, report.phi_subjects) == (0, 0, 0, 0)
    assert report.by_category == report.by_outcome == report.by_day == {}
    assert report.top_actors == []


async def test_report_sees_only_its_org(scopes: Scopes, world: World) -> None:
    async with scopes.org_scope(world.b.owner, world.b.org_id) as session:
        report = await compliance_report(session, world.a.org_id, START, END, CATALOG)
    assert report.total == 0


async def test_report_needs_a_valid_period(scopes: Scopes, world: World) -> None:
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        with pytest.raises(AuditInputError):
            await compliance_report(session, world.a.org_id, END, START, CATALOG)
        with pytest.raises(AuditInputError):
            await compliance_report(session, world.a.org_id, START, END, CATALOG, top_n=0)


async def test_access_report_lists_exactly_the_subjects_events(
    fresh_db: Database, scopes: Scopes, world: World
) -> None:
    a = world.a
    insert(
        fresh_db.sync_engine("admin"),
        [
            event(world.b.org_id, data_subject_id="pat1", created_at=BASE),  # other org
            event(a.org_id, data_subject_id="pat10", created_at=BASE),  # prefix look-alike
        ],
    )
    rows = [
        r
        for r in all_rows(fresh_db.sync_engine("admin"), a.org_id)
        if r["data_subject_id"] == "pat1"
    ]
    async with scopes.org_scope(a.owner, a.org_id) as session:
        entries = await access_report(session, a.org_id, "pat1")
        window = await access_report(session, a.org_id, "pat1", START, END)
        capped = await access_report(session, a.org_id, "pat1", limit=3)
    assert [e.event_id for e in entries] == [r["id"] for r in rows]
    first, row = entries[0], rows[0]
    assert (first.at, first.actor_id, first.action, first.outcome) == (
        row["created_at"],
        row["workos_user_id"],
        row["action"],
        row["outcome"],
    )
    assert (first.ip_address, first.user_agent, first.resource_id) == (
        row["ip_address"],
        row["user_agent"],
        row["resource_id"],
    )
    assert [e.event_id for e in window] == [r["id"] for r in rows if START <= r["created_at"] < END]
    assert [e.event_id for e in capped] == [r["id"] for r in rows[:3]]


async def test_access_report_is_empty_for_a_non_admin(scopes: Scopes, world: World) -> None:
    async with scopes.org_scope(world.a.member, world.a.org_id) as session:
        assert await access_report(session, world.a.org_id, "pat1") == []
