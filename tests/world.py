"""A complete two-tenant world: one row (or more) in EVERY table for org A and org B.

Written through the admin connection (a superuser bypasses RLS by design), so the security tests
then probe it through the runtime roles. Each org has an owner, an expert, a plain member, and a
patient with a personal organization; the expert's event and profile exist in a private and a
public variant so tests can tell "public by design" rows from leaks.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa


@dataclass
class Tenant:
    key: str
    org_id: uuid.UUID = field(default_factory=uuid.uuid4)
    patient_org_id: uuid.UUID = field(default_factory=uuid.uuid4)
    owner: str = ""
    expert: str = ""
    member: str = ""
    patient: str = ""
    ids: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owner = f"user_{self.key}_owner"
        self.expert = f"user_{self.key}_expert"
        self.member = f"user_{self.key}_member"
        self.patient = f"user_{self.key}_patient"


@dataclass
class World:
    a: Tenant
    b: Tenant


def _insert(
    conn: sa.Connection, table: str, row: dict[str, object], returning: str = "id"
) -> object:
    cols = ", ".join(f'"{c}"' for c in row)
    params = ", ".join(f":{c}" for c in row)
    values = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
    return conn.execute(
        sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params}) RETURNING {returning}"), values
    ).scalar_one()


def _tenant(conn: sa.Connection, t: Tenant, category_id: object) -> None:
    k = t.key
    now = datetime.now(UTC)
    _insert(
        conn,
        "organizations",
        {
            "id": t.org_id,
            "workos_org_id": f"org_{k}",
            "slug": f"clinic-{k}",
            "name": f"Clinic {k.upper()}",
            "type": "clinic",
        },
    )
    _insert(
        conn,
        "organizations",
        {
            "id": t.patient_org_id,
            "workos_org_id": f"org_{k}_patient",
            "slug": f"patient-{k}",
            "name": f"Patient {k}",
            "type": "patient_personal",
        },
    )
    for user, role in (
        (t.owner, "user"),
        (t.expert, "expert_top"),
        (t.member, "user"),
        (t.patient, "user"),
    ):
        _insert(
            conn, "users", {"workos_user_id": user, "email": f"{user}@example.test", "role": role}
        )
    for user, org, role in (
        (t.owner, t.org_id, "owner"),
        (t.expert, t.org_id, "member"),
        (t.member, t.org_id, "member"),
        (t.patient, t.patient_org_id, "owner"),
    ):
        _insert(conn, "user_org_memberships", {"workos_user_id": user, "org_id": org, "role": role})
    _insert(conn, "roles", {"workos_user_id": t.expert, "role": "expert_top"})
    org = t.org_id
    ex = t.expert
    _insert(conn, "expert_setup", {"org_id": org, "workos_user_id": ex, "profile_completed": True})
    _insert(
        conn,
        "expert_applications",
        {
            "org_id": org,
            "workos_user_id": t.member,
            "expertise": "x",
            "credentials": "x",
            "experience": "x",
            "motivation": "x",
        },
    )
    _insert(
        conn,
        "profiles",
        {
            "org_id": org,
            "workos_user_id": ex,
            "first_name": "Ex",
            "last_name": k,
            "published": True,
            "primary_category_id": category_id,
        },
    )
    _insert(
        conn,
        "profiles",
        {
            "org_id": org,
            "workos_user_id": t.member,
            "first_name": "Mem",
            "last_name": k,
            "published": False,
        },
    )
    t.ids["event"] = _insert(
        conn,
        "events",
        {
            "org_id": org,
            "workos_user_id": ex,
            "name": "Private",
            "slug": "private",
            "duration_in_minutes": 30,
            "is_active": False,
        },
    )
    t.ids["public_event"] = _insert(
        conn,
        "events",
        {
            "org_id": org,
            "workos_user_id": ex,
            "name": "Public",
            "slug": "public",
            "duration_in_minutes": 60,
            "price": 5000,
        },
    )
    sched = _insert(
        conn, "schedules", {"org_id": org, "workos_user_id": ex, "timezone": "Europe/Lisbon"}
    )
    t.ids["schedule"] = sched
    _insert(
        conn,
        "schedule_availabilities",
        {
            "org_id": org,
            "schedule_id": sched,
            "start_time": "09:00",
            "end_time": "17:00",
            "day_of_week": "monday",
        },
    )
    _insert(conn, "scheduling_settings", {"org_id": org, "workos_user_id": ex})
    _insert(conn, "blocked_dates", {"org_id": org, "workos_user_id": ex, "date": date(2030, 1, 1)})
    start = now + timedelta(days=3)
    _insert(
        conn,
        "slot_reservations",
        {
            "org_id": org,
            "event_id": t.ids["public_event"],
            "workos_user_id": ex,
            "guest_email": "g@example.test",
            "start_time": start + timedelta(hours=5),
            "end_time": start + timedelta(hours=6),
            "expires_at": now + timedelta(minutes=15),
            "stripe_payment_intent_id": f"pi_hold_{k}",
        },
    )
    meeting = _insert(
        conn,
        "meetings",
        {
            "org_id": org,
            "event_id": t.ids["public_event"],
            "workos_user_id": ex,
            "guest_workos_user_id": t.patient,
            "guest_org_id": t.patient_org_id,
            "data_subject_id": t.patient,
            "guest_email": "p@example.test",
            "guest_name": "Pat",
            "start_time": start,
            "end_time": start + timedelta(hours=1),
            "timezone": "Europe/Lisbon",
            "stripe_payment_intent_id": f"pi_{k}",
        },
    )
    t.ids["meeting"] = meeting
    _insert(
        conn,
        "records",
        {
            "org_id": org,
            "meeting_id": meeting,
            "expert_id": ex,
            "vault_encrypted_content": "v1.x.y",
        },
    )
    _insert(
        conn,
        "payment_transfers",
        {
            "org_id": org,
            "payment_intent_id": f"pi_{k}",
            "checkout_session_id": f"cs_{k}",
            "event_id": str(t.ids["public_event"]),
            "expert_connect_account_id": f"acct_{k}",
            "expert_clerk_user_id": ex,
            "amount": 4000,
            "platform_fee": 1000,
            "session_start_time": start,
            "scheduled_transfer_time": start,
        },
    )
    plan = _insert(
        conn,
        "subscription_plans",
        {
            "org_id": org,
            "billing_admin_user_id": t.owner,
            "plan_type": "commission",
            "tier_level": "top",
        },
    )
    _insert(
        conn,
        "transaction_commissions",
        {
            "org_id": org,
            "workos_user_id": ex,
            "meeting_id": meeting,
            "gross_amount": 5000,
            "commission_rate": 2000,
            "commission_amount": 1000,
            "net_amount": 4000,
            "stripe_payment_intent_id": f"pi_{k}",
        },
    )
    _insert(conn, "annual_plan_eligibility", {"org_id": org, "workos_user_id": ex})
    _insert(
        conn,
        "subscription_events",
        {
            "org_id": org,
            "workos_user_id": t.owner,
            "subscription_plan_id": plan,
            "event_type": "plan_created",
            "stripe_event_id": f"evt_{k}",
        },
    )
    _insert(
        conn,
        "audit_log_exports",
        {"org_id": org, "requested_by": t.owner, "format": "csv", "filters": {"actions": ["X"]}},
    )
    _insert(
        conn,
        "audit_retention_policies",
        {"org_id": org, "category": "*", "retention_days": 3000, "set_by": t.owner},
    )
    _insert(
        conn,
        "audit_legal_holds",
        {"org_id": org, "reason": "litigation", "placed_by": t.owner, "data_subject_id": t.patient},
    )
    _insert(
        conn,
        "data_subjects",
        {"org_id": org, "subject_id": t.patient, "kind": "workos", "workos_user_id": t.patient},
    )
    _insert(
        conn,
        "audit_subject_keys",
        {
            "org_id": org,
            "subject_id": t.patient,
            "key_id": f"dk_{k}",
            "kek_id": "world",
            "destroyed_at": now,
        },
    )
    _insert(
        conn,
        "subject_erasures",
        {
            "org_id": org,
            "subject_id": f"subj_{k}_gone",
            "reason": "Art. 17 request",
            "requested_by": t.owner,
            "status": "refused",
        },
    )
    _insert(
        conn,
        "subject_disclosures",
        {
            "org_id": org,
            "subject_id": t.patient,
            "recipient": "Health authority",
            "purpose": "public health reporting",
            "description": "vaccination status",
            "disclosed_at": now,
            "recorded_by": t.owner,
        },
    )
    _insert(
        conn,
        "audit_purges",
        {
            "org_id": org,
            "kind": "events",
            "purged_by": "carelog_maintenance",
            "removed": {"RECORD_VIEWED": 1},
            "removed_count": 1,
        },
    )
    _insert(
        conn,
        "audit_seal_state",
        {"org_id": org, "tree_size": 1, "frontier": {"size": 1, "hashes": ["00" * 32]}},
        returning="org_id",
    )
    _insert(
        conn,
        "audit_seals",
        {
            "org_id": org,
            "seq": 0,
            "event_id": uuid.uuid4(),
            "event_created_at": now,
            "leaf_hash": bytes(32),
        },
        returning="org_id",
    )
    _insert(
        conn,
        "audit_checkpoints",
        {
            "org_id": org,
            "tree_size": 1,
            "root_hash": bytes(32),
            "issued_at": now,
            "key_id": "k",
            "signature": bytes(64),
            "checkpoint_hash": bytes(32),
        },
        returning="org_id",
    )
    _insert(
        conn,
        "audit_logs",
        {
            "id": uuid.uuid4(),
            "org_id": org,
            "workos_user_id": t.owner,
            "actor_type": "user",
            "action": "PROFILE_UPDATED",
            "resource_type": "profile",
            "resource_id": "p1",
            "metadata": {"k": k},
        },
    )


def build_world(engine: sa.Engine) -> World:
    world = World(Tenant("a"), Tenant("b"))
    with engine.begin() as conn:
        category = _insert(conn, "categories", {"name": f"Physio {uuid.uuid4().hex[:6]}"})
        _tenant(conn, world.a, category)
        _tenant(conn, world.b, category)
    return world
