"""Every read of the trail leaves one shape of event, whichever surface read it.

The API, the viewer and the CLI all record through ``carelog.audit.trail_reads``; these are
the rows that land, read back from PostgreSQL as the compliance officer would read them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from audit_env import AuditEnv

from carelog.audit import AuditFilters, audit_context, trail_reads


def _rows(env: AuditEnv) -> list[dict[str, Any]]:
    with env.db.sync_engine("admin").connect() as conn:
        found = conn.execute(
            sa.text(
                "select action, resource_type, data_subject_id, metadata, workos_user_id"
                " from audit_logs where action in (:q, :r, :v) order by created_at, id"
            ),
            {"q": trail_reads.QUERIED, "r": trail_reads.REPORTED, "v": trail_reads.VERIFIED},
        )
        return [dict(r._mapping) for r in found]


async def test_each_read_is_recorded_with_its_facts_and_surface(audit_env: AuditEnv) -> None:
    a = audit_env.world.a
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    event_id = uuid.uuid4()
    with audit_context(actor_id=a.owner, org_id=a.org_id):
        await trail_reads.record_page_read(AuditFilters(actions=("X",)), 7, paged=True)
        await trail_reads.record_event_read(event_id, via="viewer")
        await trail_reads.record_compliance_report(since, until, via="cli")
        await trail_reads.record_access_report("patient-17", 3)
        await trail_reads.record_verification(False, since=since, via="viewer")
    page, one, report, access, verified = _rows(audit_env)
    assert all(r["workos_user_id"] == a.owner for r in (page, one, report, access, verified))
    assert page["action"] == trail_reads.QUERIED and page["resource_type"] == "compliance"
    assert page["metadata"]["returned"] == 7 and page["metadata"]["paged"] is True
    assert page["metadata"]["filters"]["actions"] == ["X"] and "via" not in page["metadata"]
    assert one["metadata"] == {"event_id": str(event_id), "returned": 1, "via": "viewer"}
    assert report["metadata"] == {
        "kind": "compliance",
        "since": since.isoformat(),
        "until": until.isoformat(),
        "via": "cli",
    }
    # an access report is on the patient's own trail too
    assert access["data_subject_id"] == "patient-17"
    assert access["metadata"] == {"kind": "access", "entries": 3}
    assert verified["action"] == trail_reads.VERIFIED and verified["resource_type"] == "audit_log"
    assert verified["metadata"] == {"ok": False, "since": since.isoformat(), "via": "viewer"}
