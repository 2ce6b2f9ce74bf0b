"""log_audit_event end to end on a real PostgreSQL: atomic, durable, org-bound, never lost."""

from __future__ import annotations

import asyncio
import threading

import pytest
import sqlalchemy as sa
from audit_env import AuditEnv

from carelog.audit import audit_context, log_audit_event, log_audit_event_sync
from carelog.audit.context import current_context
from carelog.audit.errors import AuditInputError, MissingAuditContextError
from carelog.audit.events import build_event
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter

REFERENCE_NEW_VOCABULARY = """MEDICAL_RECORD_CREATED MEDICAL_RECORD_VIEWED MEDICAL_RECORD_UPDATED
MEDICAL_RECORD_DELETED MEDICAL_RECORDS_EXPORTED APPOINTMENT_CREATED APPOINTMENT_VIEWED
APPOINTMENT_UPDATED APPOINTMENT_CANCELLED APPOINTMENT_COMPLETED APPOINTMENT_NO_SHOW
PAYMENT_INITIATED PAYMENT_COMPLETED PAYMENT_FAILED PAYMENT_REFUNDED PAYMENT_DISPUTED
PRESCRIPTION_CREATED PRESCRIPTION_VIEWED PRESCRIPTION_UPDATED PRESCRIPTION_CANCELLED
HEALTH_DATA_ACCESSED HEALTH_DATA_EXPORTED LAB_RESULTS_VIEWED DIAGNOSIS_RECORDED PROFILE_CREATED
PROFILE_UPDATED PROFILE_VIEWED PROFILE_DELETED ORG_MEMBER_INVITED ORG_MEMBER_REMOVED
ORG_SETTINGS_UPDATED ORG_SUBSCRIPTION_CHANGED UNAUTHORIZED_ACCESS_ATTEMPT
SUSPICIOUS_ACTIVITY_DETECTED DATA_BREACH_DETECTED SECURITY_ALERT_TRIGGERED
COMPLIANCE_REPORT_GENERATED AUDIT_LOG_EXPORTED GDPR_DATA_REQUEST GDPR_DATA_DELETION
google_calendar.connection_initiated google_calendar.connected google_calendar.connection_failed
google_calendar.disconnected google_calendar.token_refreshed""".split()


def test_every_action_of_the_reference_vocabulary_exists(audit_env: AuditEnv) -> None:
    assert len(REFERENCE_NEW_VOCABULARY) == 45
    missing = set(REFERENCE_NEW_VOCABULARY) - set(audit_env.service.catalog.actions)
    assert missing == set()


async def test_event_outside_a_transaction_is_durable_on_return(audit_env: AuditEnv) -> None:
    a = audit_env.world.a
    with audit_context(actor_id=a.expert, org_id=a.org_id, ip_address="192.0.2.7", user_agent="t"):
        event = await log_audit_event(
            "MEDICAL_RECORD_VIEWED",
            "medical_record",
            "meeting-1",
            None,
            {"record_ids": ["r1", "r2"], "count": 2},
            data_subject=a.patient,
        )
    with audit_env.db.sync_engine("admin").connect() as conn:
        row = (
            conn.execute(sa.text("select * from audit_logs where id = :id"), {"id": event.id})
            .mappings()
            .one()
        )
    assert row["workos_user_id"] == a.expert
    assert row["org_id"] == a.org_id
    assert row["data_subject_id"] == a.patient
    assert str(row["ip_address"]) == "192.0.2.7"
    assert row["metadata"] == {"record_ids": ["r1", "r2"], "count": 2}
    assert row["source"] == "live"


async def test_change_inside_a_unit_commits_and_rolls_back_with_it(audit_env: AuditEnv) -> None:
    a = audit_env.world.a
    changes = {"old_values": {"name": "Private"}, "new_values": {"name": "Renamed"}}
    with audit_context(actor_id=a.expert, org_id=a.org_id):
        async with audit_env.scopes.org_scope(a.expert, a.org_id) as session:
            await session.execute(
                sa.text("update events set name = 'Renamed' where id = :e"), {"e": a.ids["event"]}
            )
            kept = await log_audit_event(
                "EVENT_TYPE_UPDATED", "event_type", a.ids["event"], changes
            )
        with pytest.raises(RuntimeError):
            async with audit_env.scopes.org_scope(a.expert, a.org_id) as session:
                await session.execute(
                    sa.text("update events set name = 'Lost' where id = :e"), {"e": a.ids["event"]}
                )
                lost = await log_audit_event(
                    "EVENT_TYPE_UPDATED", "event_type", a.ids["event"], changes
                )
                raise RuntimeError("business failure")
    assert audit_env.count("id = :id", id=kept.id) == 1
    assert audit_env.count("id = :id", id=lost.id) == 0
    assert audit_env.service.writer.stats.submitted == 0  # both went through the transaction


async def test_denied_attempt_is_recorded_although_the_transaction_rolls_back(
    audit_env: AuditEnv,
) -> None:
    a = audit_env.world.a
    with audit_context(actor_id=a.member, org_id=a.org_id), pytest.raises(PermissionError):
        async with audit_env.scopes.org_scope(a.member, a.org_id):
            denied = await log_audit_event(
                "MEDICAL_RECORD_VIEWED",
                "medical_record",
                "meeting-x",
                outcome="denied",
                data_subject=a.patient,
            )
            raise PermissionError("not the meeting's expert")
    assert audit_env.count("id = :id and outcome = 'denied'", id=denied.id) == 1


async def test_no_context_no_silent_drop(audit_env: AuditEnv) -> None:
    with pytest.raises(MissingAuditContextError):
        await log_audit_event("PROFILE_VIEWED", "profile", "p")
    with (
        pytest.raises(AuditInputError),
        audit_context(actor_id="u", org_id=audit_env.world.a.org_id),
    ):
        await log_audit_event("NOT_AN_ACTION", "profile", "p")
    assert audit_env.count() == 2  # only the world's own rows


async def test_in_transaction_event_cannot_claim_another_actor(audit_env: AuditEnv) -> None:
    """RLS binds the row to the unit's user: a mismatched context fails the whole unit."""
    a = audit_env.world.a
    with (
        pytest.raises(sa.exc.DBAPIError, match="row-level security"),
        audit_context(actor_id=a.owner, org_id=a.org_id),
    ):
        async with audit_env.scopes.org_scope(a.expert, a.org_id):
            await log_audit_event("PROFILE_UPDATED", "profile", "p1")


async def test_system_actor_events(audit_env: AuditEnv) -> None:
    b = audit_env.world.b
    with audit_context(actor_id="system:stripe-webhook", org_id=b.org_id):
        event = await log_audit_event(
            "PAYMENT_FAILED", "payment", "pi_1", None, {"code": "card_declined"}
        )
        async with audit_env.scopes.system_scope("system:stripe-webhook", b.org_id):
            inside = await log_audit_event("PAYMENT_COMPLETED", "payment", "pi_2")
    assert audit_env.count("id in (:a, :b) and actor_type = 'system'", a=event.id, b=inside.id) == 2


async def test_many_concurrent_callers_share_transactions(audit_env: AuditEnv) -> None:
    a = audit_env.world.a

    async def one(i: int) -> None:
        with audit_context(actor_id=a.owner, org_id=a.org_id):
            await log_audit_event("PROFILE_VIEWED", "profile", str(i))

    await asyncio.gather(*(one(i) for i in range(3000)))
    stats = audit_env.service.writer.stats
    assert audit_env.count("action = 'PROFILE_VIEWED'") == 3000
    assert stats.committed == 3000
    assert stats.batches < 3000 / 10, stats  # group commit: far fewer transactions than events


async def test_sync_twin_from_a_worker_thread(audit_env: AuditEnv) -> None:
    a = audit_env.world.a
    ids: list[object] = []

    def work() -> None:
        with audit_context(actor_id="system:nightly-job", org_id=a.org_id):
            ids.append(
                log_audit_event_sync("SYSTEM_ERROR", "security", "job-1", None, {"step": 3}).id
            )

    thread = threading.Thread(target=work)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert audit_env.count("id = :id", id=ids[0]) == 1


async def test_sync_twin_refuses_to_block_an_event_loop(audit_env: AuditEnv) -> None:
    with (
        audit_context(actor_id="u", org_id=audit_env.world.a.org_id),
        pytest.raises(AuditInputError),
    ):
        log_audit_event_sync("PROFILE_VIEWED", "profile", "p")


async def test_unreachable_database_spools_then_replays_exactly_once(audit_env: AuditEnv) -> None:
    """A writer pointed at a dead port acknowledges through the spool; a healthy writer on the
    same spool replays it; replaying again stores nothing twice."""
    a = audit_env.world.a
    spool_dir = audit_env.spool_dir.parent / "dead-spool"

    dead = AuditWriter(
        "postgresql://nobody@127.0.0.1:1/none", Spool(spool_dir), deadline=0.2, connect_timeout=0.5
    )
    await dead.start()
    service = audit_env.service
    events = []
    with audit_context(actor_id=a.owner, org_id=a.org_id):
        for i in range(50):
            event, _ = build_event(
                service.catalog,
                service.masker,
                current_context(),
                "PROFILE_VIEWED",
                "profile",
                f"dead-{i}",
                None,
                None,
            )
            events.append(event)
    await asyncio.gather(*(dead.submit(e) for e in events))
    assert dead.stats.spooled == 50 and dead.stats.circuit_open
    await dead.stop()
    assert audit_env.count("resource_id like 'dead-%'") == 0
    # copy the spool file so we can replay it twice
    files = sorted(spool_dir.glob("spool-*.jsonl"))
    assert len(files) == 1
    duplicate = spool_dir / ("spool-99999999999999999999-copy.jsonl")
    duplicate.write_bytes(files[0].read_bytes())
    conninfo = audit_env.service.writer.conninfo
    healthy = AuditWriter(conninfo, Spool(spool_dir))
    await healthy.start()
    for _ in range(100):
        if not healthy.stats.circuit_open:
            break
        await asyncio.sleep(0.05)
    await healthy.stop()
    assert healthy.stats.replayed == 100
    assert audit_env.count("resource_id like 'dead-%'") == 50
    assert audit_env.count("resource_id like 'dead-%' and source = 'spool'") == 50
    assert list(spool_dir.glob("spool-*.jsonl")) == []
