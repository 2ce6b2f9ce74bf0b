"""Reading the log: every filter applies and combines, pages are exact, RLS decides who reads."""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from audit_rows import BASE, all_rows, event, insert, matches, random_events
from sqlalchemy.ext.asyncio import AsyncSession

from carelog.audit.errors import AuditInputError
from carelog.audit.filters import AuditFilters, Cursor
from carelog.audit.query import AuditRecord, get_audit_logs, resource_trail, user_activity
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import World, build_world


async def read_all(
    session: AsyncSession, org_id: uuid.UUID, filters: AuditFilters
) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    cursor: str | None = None
    while True:
        page = await get_audit_logs(session, org_id, filters, cursor)
        assert len(page.items) <= filters.limit
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        assert len(page.items) == filters.limit
        cursor = page.next_cursor


@pytest.fixture
def world(fresh_db: Database) -> World:
    w = build_world(fresh_db.sync_engine("admin"))
    insert(fresh_db.sync_engine("admin"), random_events(w.a.org_id, 300))
    insert(fresh_db.sync_engine("admin"), random_events(w.b.org_id, 50, seed=9))
    return w


FILTER_CASES: list[dict[str, Any]] = [
    {},
    {"start": BASE + timedelta(days=20)},
    {"end": BASE + timedelta(days=40)},
    # The legacy platform kept only one end of a range; both must hold.
    {"start": BASE + timedelta(days=10), "end": BASE + timedelta(days=30)},
    {"actions": ("MEDICAL_RECORD_VIEWED",)},
    {"actions": ("MEDICAL_RECORD_VIEWED", "LOGIN_FAILED")},
    {"resource_types": ("meeting",)},
    {"resource_types": ("meeting", "profile"), "resource_id": "r2"},
    {"resource_id": "r3"},
    {"actor_id": "u2"},
    {"data_subject_id": "pat1"},
    {"outcomes": ("denied",)},
    {"outcomes": ("denied", "failure")},
    {
        "start": BASE + timedelta(days=5),
        "end": BASE + timedelta(days=80),
        "actions": ("MEDICAL_RECORD_VIEWED", "PROFILE_UPDATED"),
        "resource_types": ("medical_record",),
        "actor_id": "u1",
        "data_subject_id": "pat2",
        "outcomes": ("success", "denied"),
    },
    {"actor_id": "u1", "resource_id": "r1", "outcomes": ("success",)},
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: ",".join(c) or "none")
async def test_every_filter_applies_and_they_combine(
    fresh_db: Database, scopes: Scopes, world: World, case: dict[str, Any]
) -> None:
    expected = [
        r["id"]
        for r in all_rows(fresh_db.sync_engine("admin"), world.a.org_id)
        if matches(r, **case)
    ]
    assert expected, "each case must select something to be meaningful"
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        got = await read_all(session, world.a.org_id, AuditFilters(**case, limit=17))
    assert [r.id for r in got] == expected
    assert {r.org_id for r in got} == {world.a.org_id}


async def test_combined_filters_narrow_every_time(scopes: Scopes, world: World) -> None:
    a = world.a
    steps: list[dict[str, Any]] = [
        {},
        {"start": BASE + timedelta(days=3)},
        {"end": BASE + timedelta(days=70)},
        {"actions": ("MEDICAL_RECORD_VIEWED", "PROFILE_UPDATED", "MEETING_BOOKED")},
        {"outcomes": ("success", "denied")},
        {"actor_id": "u3"},
    ]
    sizes = []
    acc: dict[str, Any] = {}
    async with scopes.org_scope(a.owner, a.org_id) as session:
        for step in steps:
            acc.update(step)
            sizes.append(len(await read_all(session, a.org_id, AuditFilters(**acc, limit=1000))))
    assert all(x > y for x, y in itertools.pairwise(sizes)), sizes


async def test_pagination_visits_every_row_once_in_order(
    fresh_db: Database, scopes: Scopes, world: World
) -> None:
    a = world.a
    expected = [r["id"] for r in all_rows(fresh_db.sync_engine("admin"), a.org_id)]
    async with scopes.org_scope(a.owner, a.org_id) as session:
        for limit in (1, 7, 50, 301, 1000):
            got = [r.id for r in await read_all(session, a.org_id, AuditFilters(limit=limit))]
            assert got == expected
            assert len(set(got)) == len(got)
        keys = [(r.created_at, r.id) for r in await read_all(session, a.org_id, AuditFilters())]
    assert keys == sorted(keys, reverse=True)
    assert len({k[0] for k in keys}) < len(keys), "the data must contain timestamp ties"


async def test_last_full_page_has_no_cursor(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))  # one event of its own in org A
    insert(fresh_db.sync_engine("admin"), random_events(world.a.org_id, 9))
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        first = await get_audit_logs(session, world.a.org_id, AuditFilters(limit=5))
        assert first.next_cursor is not None
        second = await get_audit_logs(
            session, world.a.org_id, AuditFilters(limit=5), first.next_cursor
        )
    assert len(second.items) == 5
    assert second.next_cursor is None


async def test_records_carry_every_column(scopes: Scopes, fresh_db: Database) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    row = event(
        world.a.org_id,
        data_subject_id="pat9",
        old_values={"a": 1},
        new_values={"a": 2},
        metadata={"why": "test"},
        ip_address="192.0.2.7",
        user_agent="ua",
        request_id="req-1",
        outcome="denied",
        created_at=BASE + timedelta(days=500),
    )
    insert(fresh_db.sync_engine("admin"), [row])
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        page = await get_audit_logs(session, world.a.org_id, AuditFilters(data_subject_id="pat9"))
    [got] = page.items
    assert got.to_json_dict() | {"source": "live", "schema_version": 1} == got.to_json_dict()
    for key, value in row.items():
        assert getattr(got, key) == value, key


async def test_a_plain_member_sees_nothing(scopes: Scopes, world: World) -> None:
    async with scopes.org_scope(world.a.member, world.a.org_id) as session:
        page = await get_audit_logs(session, world.a.org_id, AuditFilters(limit=1000))
    assert page.items == []
    assert page.next_cursor is None


async def test_another_orgs_admin_sees_nothing_of_org_a(scopes: Scopes, world: World) -> None:
    a, b = world.a, world.b
    # B's owner in B's scope, asking for A's id: the explicit filter and RLS disagree, so nothing.
    async with scopes.org_scope(b.owner, b.org_id) as session:
        assert (await get_audit_logs(session, a.org_id, AuditFilters(limit=1000))).items == []
        own = await read_all(session, b.org_id, AuditFilters(limit=1000))
    assert own and {r.org_id for r in own} == {b.org_id}
    # B's owner claiming A's org as the scope: not a member there, so RLS shows nothing.
    async with scopes.org_scope(b.owner, a.org_id) as session:
        assert (await get_audit_logs(session, a.org_id, AuditFilters(limit=1000))).items == []


async def test_resource_trail_needs_type_and_id(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    org = world.a.org_id
    rows = [
        event(org, resource_type="meeting", resource_id="42", created_at=BASE + timedelta(hours=i))
        for i in range(3)
    ] + [
        event(org, resource_type="profile", resource_id="42", created_at=BASE),
        event(org, resource_type="meeting", resource_id="43", created_at=BASE),
    ]
    insert(fresh_db.sync_engine("admin"), rows)
    async with scopes.org_scope(world.a.owner, org) as session:
        trail = await resource_trail(session, org, "meeting", "42")
        late = await resource_trail(session, org, "meeting", "42", start=BASE + timedelta(hours=1))
    assert [r.id for r in trail.items] == [r["id"] for r in reversed(rows[:3])]
    assert [r.id for r in late.items] == [rows[2]["id"], rows[1]["id"]]


async def test_user_activity_honours_both_dates(fresh_db: Database, scopes: Scopes) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    org = world.a.org_id
    rows = [
        event(org, workos_user_id=actor, created_at=BASE + timedelta(days=d))
        for d in range(10)
        for actor in ("alice", "bob")
    ]
    insert(fresh_db.sync_engine("admin"), rows)
    async with scopes.org_scope(world.a.owner, org) as session:
        page = await user_activity(
            session, org, "alice", BASE + timedelta(days=2), BASE + timedelta(days=5)
        )
    assert [r.created_at for r in page.items] == [BASE + timedelta(days=d) for d in (4, 3, 2)]
    assert {r.workos_user_id for r in page.items} == {"alice"}


# --------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": datetime(2024, 1, 1)}, "start"),
        ({"end": datetime(2024, 1, 1)}, "end"),
        ({"start": BASE, "end": BASE}, "start"),
        ({"start": BASE, "end": BASE - timedelta(seconds=1)}, "start"),
        ({"outcomes": ("maybe",)}, "outcomes"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": True}, "limit"),
        ({"actions": ("",)}, "actions"),
        ({"actor_id": "x" * 300}, "actor_id"),
        ({"resource_id": ""}, "resource_id"),
    ],
)
def test_bad_filters_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(AuditInputError) as info:
        AuditFilters(**kwargs)
    assert info.value.field == field


def test_filters_normalise_and_serialise() -> None:
    f = AuditFilters(actions="A", outcomes=["denied", "denied"], start=BASE)  # type: ignore[arg-type]
    assert f.actions == ("A",) and f.outcomes == ("denied",)
    assert f.to_json_dict() == {"start": BASE.isoformat(), "actions": ["A"], "outcomes": ["denied"]}
    assert f.with_limit(3).limit == 3 and f.with_limit(3).fingerprint() == f.fingerprint()


def _tamper(token: str) -> list[str]:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    variants = []
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        variants.append(base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode())
    return [*variants, token[:-2], token + "AA", "garbage!", "", "A" * 500, "====", "é"]


def test_every_tampered_cursor_is_refused() -> None:
    filters = AuditFilters(actor_id="u1")
    token = Cursor(BASE, uuid.uuid4()).encode(filters)
    assert Cursor.decode(token, filters).created_at == BASE
    assert Cursor.decode(token, filters.with_limit(9)).created_at == BASE
    for bad in _tamper(token):
        with pytest.raises(AuditInputError) as info:
            Cursor.decode(bad, filters)
        assert info.value.field == "cursor"
    with pytest.raises(AuditInputError):  # a cursor only continues the query it came from
        Cursor.decode(token, AuditFilters(actor_id="u2"))


async def test_tampered_cursor_fails_the_query(scopes: Scopes, world: World) -> None:
    filters = AuditFilters(limit=5)
    async with scopes.org_scope(world.a.owner, world.a.org_id) as session:
        page = await get_audit_logs(session, world.a.org_id, filters)
        assert page.next_cursor is not None
        with pytest.raises(AuditInputError) as info:
            await get_audit_logs(session, world.a.org_id, filters, page.next_cursor[:-1] + "x")
    assert info.value.field == "cursor"
