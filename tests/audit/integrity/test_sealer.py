"""The sealer: incremental sealing, late commits, lag, equivalence of the fast row path."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from integrity_env import BASE, Integrity, make_event
from psycopg import sql

from carelog.audit.integrity import (
    SigningKeyring,
    canonical_event_bytes,
    event_leaf_hash,
    generate_key,
    root_from_leaf_hashes,
)
from carelog.audit.integrity.rows import (
    EVENT_FIELDS,
    EXCLUDED_COLUMNS,
    LINE_FIELDS,
    RowEncoder,
    copy_lines,
    events_copy,
    split_line,
)
from carelog.audit.integrity.sealer import Sealer
from carelog.db.engine import Database
from carelog.db.schema import AuditLog
from carelog.db.session import Scopes


def test_leaf_covers_every_column_but_txid() -> None:
    columns = [c.name for c in AuditLog.__table__.columns]
    assert sorted(columns) == sorted(EVENT_FIELDS + EXCLUDED_COLUMNS)


async def test_seals_in_order_with_a_chained_checkpoint_per_pass(integrity: Integrity) -> None:
    first = integrity.add(5)
    result = await integrity.sealer.seal_once()
    mine = {o.org_id: o for o in result.orgs}[integrity.org]
    assert (mine.sealed, mine.tree_size) == (5, 5) and mine.checkpoint is not None
    second = integrity.add(3, start=5)
    again = {o.org_id: o for o in (await integrity.sealer.seal_once()).orgs}
    assert again[integrity.org].sealed == 3
    cp2 = again[integrity.org].checkpoint
    assert cp2 is not None and cp2.checkpoint.previous_hash == mine.checkpoint.checkpoint_hash()
    # nothing new: no seals, no checkpoint; on demand: no second checkpoint for the same size
    idle = await integrity.sealer.seal_once(force_checkpoint=True, org_ids=[integrity.org])
    assert {o.org_id: o for o in idle.orgs}[integrity.org].checkpoint is None
    with integrity.admin().connect() as conn:
        seals = (
            conn.execute(
                sa.text("SELECT event_id FROM audit_seals WHERE org_id = :o ORDER BY seq"),
                {"o": integrity.org},
            )
            .scalars()
            .all()
        )
    assert seals == first + second


async def test_checkpoint_on_demand_for_an_org_without_events(integrity: Integrity) -> None:
    result = await integrity.sealer.seal_once(force_checkpoint=True, org_ids=[integrity.other_org])
    org = {o.org_id: o for o in result.orgs}[integrity.other_org]
    assert org.checkpoint is not None and org.checkpoint.checkpoint.tree_size == 0
    assert (await integrity.verify(integrity.other_org)).ok


async def test_late_commit_is_sealed_exactly_once(integrity: Integrity) -> None:
    integrity.add(3)
    late = make_event(integrity.org, 50, resource_id="late")
    conn = psycopg.connect(
        integrity.db.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        conn.execute(  # the transaction starts (and gets its txid) before the sealer runs
            "INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action, "
            "resource_type, created_at) VALUES (%s, %s, 'u', 'user', 'A', 'r', %s)",
            (late["id"], integrity.org, BASE),
        )
        integrity.add(2, start=3)  # committed after the late transaction started
        await integrity.sealer.seal_once()
        assert (
            integrity.scalar("SELECT count(*) FROM audit_seals WHERE org_id = :o", o=integrity.org)
            == 3
        )  # the horizon stops at the open transaction
        lag = await integrity.sealer.sealer_lag()
        assert {o.org_id: o.unsealed for o in lag.orgs}[integrity.org] == 2
        conn.commit()
    finally:
        conn.close()
    await integrity.sealer.seal_once()
    await integrity.sealer.seal_once()
    counts = integrity.scalar(
        "SELECT count(*) FROM audit_seals WHERE org_id = :o AND event_id = :e",
        o=integrity.org,
        e=late["id"],
    )
    assert counts == 1
    assert (
        integrity.scalar("SELECT count(*) FROM audit_seals WHERE org_id = :o", o=integrity.org) == 6
    )
    assert (await integrity.verify(window=timedelta(0))).ok
    assert integrity.org not in {o.org_id for o in (await integrity.sealer.sealer_lag()).orgs}


async def test_run_loop_seals_in_the_background(integrity: Integrity) -> None:
    integrity.add(4)
    task = asyncio.create_task(integrity.sealer.run(0.05))
    try:
        for _ in range(200):
            if (
                integrity.scalar(
                    "SELECT count(*) FROM audit_seals WHERE org_id = :o", o=integrity.org
                )
                == 4
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (await integrity.verify()).ok


TRICKY = [
    {"ip_address": "::1.2.3.4"},
    {"ip_address": "::ffff:10.1.2.3"},
    {"ip_address": "2001:0db8:0:0:1:0:0:1"},
    {"ip_address": "fe80::1/64"},
    {"ip_address": "10.0.0.0/8"},
    {"ip_address": None, "user_agent": 'tab\there \u2028 \x01 "q" \\ é 😀'},
    {"metadata": {"bb": 1, "a": {"zz": [1, {"y": None, "x": 2**63}], "é": "ü"}, "aaa": -5}},
    {"metadata": {"big": 2**64 - 1, "neg": -(2**63)}},
    # dots in strings only: orjson's sorted output is exact (the quick route's common case)
    {"metadata": {"host": "api.example.com", "version": "1.2.3", "n": 7, "l": ["a.b", 2]}},
    {"created_at": BASE.replace(microsecond=0)},
    {"old_values": {"k": "masked:hmac-sha256:00"}, "new_values": {"k": False}},
]


async def test_fast_row_path_equals_canonical_event_bytes(integrity: Integrity) -> None:
    rows = []
    for i, override in enumerate(TRICKY):
        row = make_event(integrity.org, i, metadata={"via": "web"})
        row.update(override)
        rows.append(row)
    ids = integrity.insert(rows)
    conninfo = integrity.db.admin_url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    by_id = sql.SQL("e.id = ANY({})").format(sql.Literal([str(i) for i in ids]))
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        async with conn.cursor() as typed:
            await typed.execute(
                f"SELECT {', '.join(chr(34) + c + chr(34) for c in EVENT_FIELDS)} "
                "FROM audit_logs WHERE id = ANY(%s) ORDER BY txid, created_at, id",
                (ids,),
            )
            typed_rows = await typed.fetchall()
        lines = await copy_lines(conn, events_copy(integrity.org, where=by_id))
    assert len(typed_rows) == len(TRICKY)
    encoder = RowEncoder()
    for t, line in zip(typed_rows, lines, strict=True):
        expected = canonical_event_bytes(dict(zip(EVENT_FIELDS, t, strict=True)))
        assert encoder.canonical(split_line(line), line) == expected
        assert RowEncoder.exact(split_line(line)) == expected
    assert encoder.leaves(lines) == [
        event_leaf_hash(dict(zip(EVENT_FIELDS, t, strict=True))) for t in typed_rows
    ]


def test_non_integer_jsonb_numbers_keep_their_stored_text() -> None:
    parts = [b"00000000-0000-0000-0000-000000000001"] * LINE_FIELDS
    parts[0] = parts[2] = parts[3] = b""  # ip_address, new_values, old_values: NULL
    parts[1] = b'{"a": 1.50, "b": 100000000000000000000000, "c": 0.1}'
    parts[-6], parts[-2], parts[-1] = b"1", b"0", b"1\n"  # schema_version, nulls, txid
    data = RowEncoder.exact(parts)
    assert b'"metadata":{"a":1.50,"b":100000000000000000000000,"c":0.1}' in data


# --------------------------------------------------------------------------- batch splits
def _split_points(n: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=1, max_value=n - 1), max_size=5, unique=True).map(sorted)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(n=st.integers(min_value=1, max_value=24), data=st.data())
def test_random_batch_splits_give_the_root_of_one_batch(
    fresh_db: Database, n: int, data: st.DataObject
) -> None:
    cuts = data.draw(_split_points(n)) if n > 1 else []
    org = uuid.uuid4()
    admin = fresh_db.sync_engine("admin")
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO organizations (id, workos_org_id, slug, name, type) "
                "VALUES (:id, :w, :w, :w, 'clinic')"
            ),
            {"id": org, "w": f"org-{org}"},
        )
    events = [make_event(org, i, metadata={"via": "web", "i": i}) for i in range(n)]
    env = Integrity(
        fresh_db,
        None,
        Scopes(fresh_db),  # type: ignore[arg-type]
        SigningKeyring.from_seed(generate_key()[1], "k"),
        None,
        org,
        org,
    )  # type: ignore[arg-type]
    sealer = Sealer(env.scopes, env.keyring)

    async def run() -> bytes:
        try:
            bounds = [0, *cuts, n]
            for lo, hi in itertools.pairwise(bounds):
                env.insert(events[lo:hi])
                await sealer.seal_once()
            report = await env.verify()
            assert report.ok and report.leaves == n
            async with env.scopes.system_scope("system:test", org) as session:
                root = (
                    await session.execute(
                        sa.text(
                            "SELECT root_hash FROM audit_checkpoints WHERE org_id = :o "
                            "ORDER BY tree_size DESC LIMIT 1"
                        ),
                        {"o": org},
                    )
                ).scalar_one()
            return bytes(root)
        finally:
            await fresh_db.dispose()

    root = asyncio.run(run())
    reference = root_from_leaf_hashes(
        [event_leaf_hash({k: e[k] for k in EVENT_FIELDS}) for e in events]
    )
    assert root == reference


async def test_background_sealer_for_the_web_app(integrity: Integrity, tmp_path: Path) -> None:
    from carelog.audit.integrity.sealer import background_sealer

    integrity.add(3)
    settings = integrity.db.settings.with_changes(
        audit_signing_keys=integrity.key_env, audit_seal_interval=0.05
    )
    async with background_sealer(integrity.scopes, settings) as sealer:
        for _ in range(200):
            if sealer.last_pass is not None and integrity.scalar(
                "SELECT count(*) FROM audit_seals WHERE org_id = :o", o=integrity.org
            ):
                break
            await asyncio.sleep(0.05)
    assert (await integrity.verify()).leaves == 3


async def test_a_large_backlog_is_sealed_in_bounded_checkpointed_transactions(
    integrity: Integrity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carelog.audit.integrity import sealer as sealer_module

    monkeypatch.setattr(sealer_module, "MAX_EVENTS_PER_TRANSACTION", 4)
    monkeypatch.setattr(sealer_module, "FETCH_ROWS", 3)
    ids = integrity.add(10)
    result = await integrity.sealer.seal_once()
    mine = {o.org_id: o for o in result.orgs}[integrity.org]
    assert (mine.sealed, mine.tree_size) == (10, 10)
    sizes = [
        int(r[0])
        for r in integrity.admin()
        .connect()
        .execute(
            sa.text("SELECT tree_size FROM audit_checkpoints WHERE org_id = :o ORDER BY 1"),
            {"o": integrity.org},
        )
    ]
    assert sizes == [4, 8, 10]  # one checkpoint per transaction, each a consistent tree
    with integrity.admin().connect() as conn:
        seals = conn.execute(
            sa.text("SELECT event_id FROM audit_seals WHERE org_id = :o ORDER BY seq"),
            {"o": integrity.org},
        ).scalars()
        assert list(seals) == ids
    report = await integrity.verify()
    assert report.ok, report.problems
    assert (report.leaves, report.checkpoints, report.roots) == (10, 3, 3)
    assert (await integrity.sealer.seal_once()).sealed == 0  # the horizon moved on


async def test_cancelling_the_sealer_inside_a_copy_stops_it(
    integrity: Integrity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the app cancels the sealer wherever it is, even inside a COPY (after which the
    session's rollback fails too); it must stop, not log a failed org and carry on."""
    from carelog.audit.integrity import sealer as sealer_module

    real_copy_lines = sealer_module.copy_lines

    async def cancelled_inside(conn: Any, statement: Any, params: Any = None) -> list[bytes]:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # arrives while the COPY is being started
        return await real_copy_lines(conn, statement, params)

    integrity.add(50)
    monkeypatch.setattr(sealer_module, "copy_lines", cancelled_inside)
    with pytest.raises(asyncio.CancelledError):
        await integrity.sealer.seal_once()
    monkeypatch.undo()
    await integrity.sealer.seal_once()
    assert (await integrity.verify()).ok
