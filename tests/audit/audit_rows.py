"""Audit events for read-side tests, written as the superuser (RLS is what the tests probe).

Deterministic (seeded) and deliberately lumpy: shared timestamps, several actors, subjects,
resource types that reuse ids, every outcome, dates across several months.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from carelog.db.schema import AuditLog

ACTIONS = ("PROFILE_UPDATED", "MEDICAL_RECORD_VIEWED", "MEETING_BOOKED", "LOGIN_FAILED")
RESOURCE_TYPES = ("profile", "medical_record", "meeting")
OUTCOMES = ("success", "failure", "denied")
BASE = datetime(2024, 3, 1, tzinfo=UTC)


def event(org_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "workos_user_id": "user_x",
        "actor_type": "user",
        "action": "PROFILE_UPDATED",
        "resource_type": "profile",
        "resource_id": "p1",
        "outcome": "success",
        "data_subject_id": None,
        "old_values": None,
        "new_values": None,
        "metadata": None,
        "ip_address": None,
        "user_agent": None,
        "request_id": None,
        "created_at": BASE,
    }
    row.update(overrides)
    return row


def random_events(
    org_id: uuid.UUID, n: int, *, seed: int = 7, actors: Iterable[str] = ("u1", "u2", "u3")
) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    actor_list = list(actors)
    rows = []
    for i in range(n):
        # Every third event shares its timestamp with the previous one: ties are ordered by id.
        at = BASE + timedelta(hours=(i - i % 3 if i % 3 == 1 else i) * 7)
        rows.append(
            event(
                org_id,
                id=uuid.UUID(int=rnd.getrandbits(128)),
                workos_user_id=rnd.choice(actor_list),
                action=rnd.choice(ACTIONS),
                resource_type=rnd.choice(RESOURCE_TYPES),
                resource_id=f"r{rnd.randint(1, 4)}",
                outcome=rnd.choice(OUTCOMES),
                data_subject_id=rnd.choice((None, "pat1", "pat2")),
                ip_address=rnd.choice((None, "10.0.0.1", "2001:db8::1")),
                user_agent=rnd.choice((None, "Mozilla/5.0", 'agent "quoted", comma')),
                request_id=f"req{i}",
                metadata=rnd.choice((None, {"k": i, "nested": {"a": [1, 2]}})),
                old_values=rnd.choice((None, {"name": "old"})),
                new_values=rnd.choice((None, {"name": "new\nline"})),
                created_at=at,
            )
        )
    return rows


_JSON = ("old_values", "new_values", "metadata")
_INSERT = sa.text(
    "INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action, resource_type,"
    " resource_id, outcome, data_subject_id, old_values, new_values, metadata, ip_address,"
    " user_agent, request_id, created_at) VALUES (:id, :org_id, :workos_user_id, :actor_type,"
    " :action, :resource_type, :resource_id, :outcome, :data_subject_id,"
    " CAST(:old_values AS jsonb), CAST(:new_values AS jsonb), CAST(:metadata AS jsonb),"
    " CAST(:ip_address AS inet), :user_agent, :request_id, :created_at)"
)


def insert(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    """Absent JSON is SQL NULL (the table refuses a JSON ``null`` metadata)."""
    params = [
        {k: (json.dumps(v) if k in _JSON and v is not None else v) for k, v in row.items()}
        for row in rows
    ]
    with engine.begin() as conn:
        for start in range(0, len(params), 2000):
            conn.execute(_INSERT, params[start : start + 2000])


def bulk_insert(engine: sa.Engine, org_id: uuid.UUID, n: int, *, actor: str = "bulk") -> None:
    """``n`` events generated inside PostgreSQL (fast enough for hundreds of thousands)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO audit_logs (id, org_id, workos_user_id, actor_type, action,
                    resource_type, resource_id, outcome, data_subject_id, metadata, created_at)
                SELECT gen_random_uuid(), :org, :actor || (g % 50), 'user',
                    (ARRAY['PROFILE_UPDATED','MEDICAL_RECORD_VIEWED','MEETING_BOOKED',
                           'LOGIN_FAILED'])[1 + g % 4],
                    (ARRAY['profile','medical_record','meeting'])[1 + g % 3],
                    'r' || (g % 1000),
                    (ARRAY['success','success','success','failure','denied'])[1 + g % 5],
                    CASE WHEN g % 7 = 0 THEN 'pat' || (g % 100) END,
                    jsonb_build_object('i', g, 'pad', repeat('x', 200)),
                    :base - make_interval(secs => g * 30)
                FROM generate_series(1, :n) AS g
                """
            ),
            {"org": org_id, "actor": actor, "n": n, "base": BASE},
        )


def all_rows(engine: sa.Engine, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every event of the org, newest first, as the superuser sees them (the brute force)."""
    table = AuditLog.__table__
    with engine.connect() as conn:
        result = conn.execute(
            sa.select(table)
            .where(table.c.org_id == org_id)
            .order_by(table.c.created_at.desc(), table.c.id.desc())
        )
        return [_plain(dict(r._mapping)) for r in result]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    if row["ip_address"] is not None:
        row["ip_address"] = str(row["ip_address"])
    return row


def matches(row: dict[str, Any], **f: Any) -> bool:
    """The filters, written the slow obvious way."""
    checks = (
        f.get("start") is None or row["created_at"] >= f["start"],
        f.get("end") is None or row["created_at"] < f["end"],
        not f.get("actions") or row["action"] in f["actions"],
        not f.get("resource_types") or row["resource_type"] in f["resource_types"],
        f.get("resource_id") is None or row["resource_id"] == f["resource_id"],
        f.get("actor_id") is None or row["workos_user_id"] == f["actor_id"],
        f.get("data_subject_id") is None or row["data_subject_id"] == f["data_subject_id"],
        not f.get("outcomes") or row["outcome"] in f["outcomes"],
    )
    return all(checks)
