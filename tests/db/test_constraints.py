"""The data defects of the reference, each proven fixed by the database itself."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from carelog.db.engine import Database
from world import build_world


def _fails(db: Database, sql: str, **params: object) -> None:
    with pytest.raises(IntegrityError), db.sync_engine("admin").begin() as conn:
        conn.execute(sa.text(sql), params)


def test_reference_defects_are_constraints(fresh_db: Database) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    a, b = world.a, world.b
    # org_id NOT NULL on tenant tables
    _fails(
        fresh_db,
        "insert into events (workos_user_id, name, slug, duration_in_minutes) "
        "values ('u', 'n', 's', 30)",
    )
    # text enums are CHECKed
    _fails(fresh_db, "update meetings set stripe_payment_status = 'paid'")
    _fails(fresh_db, "update organizations set type = 'galaxy'")
    # double booking of a slot
    _fails(
        fresh_db,
        "insert into meetings (org_id, event_id, workos_user_id, guest_email, guest_name,"
        " start_time, end_time, timezone) select org_id, event_id, workos_user_id, "
        "'x@y', 'x', start_time, end_time, timezone from meetings where org_id = :o",
        o=a.org_id,
    )
    # duplicate payment transfer for one payment intent
    _fails(
        fresh_db,
        "insert into payment_transfers (org_id, payment_intent_id, checkout_session_id,"
        " event_id, expert_connect_account_id, expert_clerk_user_id, amount, "
        "platform_fee, session_start_time, scheduled_transfer_time) select org_id, "
        "payment_intent_id, 'cs2', event_id, expert_connect_account_id, "
        "expert_clerk_user_id, amount, platform_fee, session_start_time, "
        "scheduled_transfer_time from payment_transfers where org_id = :o",
        o=a.org_id,
    )
    # a child can never point at another organization's parent
    _fails(
        fresh_db,
        "insert into meetings (org_id, event_id, workos_user_id, guest_email, guest_name,"
        " start_time, end_time, timezone) values (:a, :e, 'u', 'x@y', 'x', now(), "
        "now() + interval '1 hour', 'UTC')",
        a=a.org_id,
        e=b.ids["public_event"],
    )
    # no cascade deletes history: events with meetings, meetings with records, orgs with audit
    _fails(fresh_db, "delete from events where id = :e", e=a.ids["public_event"])
    _fails(fresh_db, "delete from meetings where id = :m", m=a.ids["meeting"])
    _fails(fresh_db, "delete from organizations where id = :o", o=a.org_id)


def test_timestamps_are_timezone_aware(fresh_db: Database) -> None:
    with fresh_db.sync_engine("admin").connect() as conn:
        naive = (
            conn.execute(
                sa.text(
                    "select table_name || '.' || column_name from information_schema.columns "
                    "where table_schema = 'public' and data_type = 'timestamp without time zone'"
                )
            )
            .scalars()
            .all()
        )
    assert naive == []


def test_freed_slot_can_be_booked_again(fresh_db: Database) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text("update meetings set status = 'cancelled' where id = :m"),
            {"m": world.a.ids["meeting"]},
        )
        conn.execute(
            sa.text(
                "insert into meetings (id, org_id, event_id, workos_user_id, guest_email, guest_name, "
                "start_time, end_time, timezone) select :id, org_id, event_id, workos_user_id, 'x@y', "
                "'x', start_time, end_time, timezone from meetings where id = :m"
            ),
            {"id": uuid.uuid4(), "m": world.a.ids["meeting"]},
        )
