"""Outages seen through HTTP: the database stopped for real, the spool unwritable for real.

Every answer is a JSON error a client can act on (503 + ``Retry-After``), never a bare 500; the
log says once that the database went away and once that it is back; ``/health`` tells the truth.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from api_harness import running_api

from carelog.audit.api import AuditService
from carelog.audit.events import Masker
from carelog.audit.spool import Spool
from carelog.audit.writer import AuditWriter
from carelog.db.engine import Database
from carelog.platform.audit_catalog import build_catalog
from fault_env import OwnServer, own_db, own_pg, report

__all__ = ["own_db", "own_pg"]  # fixtures used by the tests below

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def broken_spool(tmp_path: Path) -> Spool:
    """A spool whose directory was replaced by a file (chmod does not stop root)."""
    spool_dir = tmp_path / "broken-spool"
    spool = Spool(spool_dir)
    shutil.rmtree(spool_dir)
    spool_dir.write_text("not a directory")
    return spool


async def test_unaudited_query_is_refused_not_acknowledged_from_memory(
    own_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audit writer cut off from PostgreSQL and its spool unwritable: an audit-log query (not
    a fail-closed action) answers 503 with the JSON body, and /health is not "ok"."""
    catalog = build_catalog()
    writer = AuditWriter(
        "postgresql://nobody@127.0.0.1:1/none",
        broken_spool(tmp_path),
        deadline=0.2,
        connect_timeout=0.5,
    )
    service = AuditService(
        catalog=catalog, masker=Masker(b"k" * 32, catalog.sensitive_fields), writer=writer
    )
    async with running_api(own_db, tmp_path, audit=service) as api:
        a = api.world.a
        statuses = []
        for _ in range(5):
            r = await api.client.get("/api/audit/events", headers=api.auth(a.owner, a.org_id))
            statuses.append(r.status_code)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/json"
            assert r.headers["retry-after"]
            assert r.json()["error"]["reason"]
        health = await api.client.get("/health")
        ready = await api.client.get("/ready")
    report(
        capsys,
        "audit writer refusing (database unreachable, spool unwritable)",
        requests=len(statuses),
        acknowledged=0,
        answered_503=statuses.count(503),
        refused=writer.stats.refused,
        health=health.json()["status"],
    )
    assert writer.stats.refused == 5
    assert health.status_code == 200  # liveness: restarting would not help
    assert health.json()["status"] == "degraded"
    assert health.json()["audit"]["state"] == "refusing"
    assert ready.status_code == 503 and ready.json()["status"] == "degraded"


async def test_database_down_answers_503_json_and_logs_once(
    own_pg: OwnServer,
    own_db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL stopped under keep-alive requests: PHI reads and audit queries answer 503
    JSON with Retry-After; one ERROR line for the outage, one line when it is over."""
    async with running_api(own_db, tmp_path) as api:
        a = api.world.a
        meeting = a.ids["meeting"]
        ok = await api.client.get("/api/audit/events", headers=api.auth(a.owner, a.org_id))
        assert ok.status_code == 200, ok.text
        own_pg.stop()
        answers = []
        with caplog.at_level(logging.INFO):
            try:
                for i in range(20):
                    path = f"/api/appointments/{meeting}/records" if i % 2 else "/api/audit/events"
                    user = a.expert if i % 2 else a.owner
                    r = await api.client.get(path, headers=api.auth(user, a.org_id))
                    answers.append(r)
                health = await api.client.get("/ready")
            finally:
                own_pg.start()
            back = await api.client.get("/api/audit/events", headers=api.auth(a.owner, a.org_id))
    web = [r for r in caplog.records if r.name == "carelog.web"]
    tracebacks = [r for r in caplog.records if r.exc_info]
    report(
        capsys,
        "database stopped under HTTP load",
        requests=len(answers),
        answered_503=sum(r.status_code == 503 for r in answers),
        web_log_lines=len(web),
        tracebacks=len(tracebacks),
        after_restart=back.status_code,
    )
    for r in answers:
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.headers["retry-after"] == "5"
        assert r.json()["error"]["reason"] == "the database is unavailable"
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert tracebacks == []
    assert back.status_code == 200, back.text
    down = [r for r in web if "unreachable" in r.getMessage()]
    up = [r for r in web if "reachable again" in r.getMessage()]
    assert len(down) == 1 and len(up) == 1, [r.getMessage() for r in web]
    # the driver's reason is named: a refused connection, or the shutdown of a pooled one
    reason = down[0].getMessage().split("answering 503: ", 1)[1]
    assert reason.startswith(("OperationalError", "AdminShutdown")), reason
