"""``/health`` is liveness (no I/O), ``/ready`` is readiness (the app role runs a query).

A liveness probe that queried the database made every probe cost a transaction and got a
healthy process restarted whenever the database was slow. Here the database refuses the app
role outright: liveness still answers, readiness says 503 with the reason, and both recover.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from api_harness import running_api

from carelog.db.engine import Database


async def test_liveness_needs_no_database_and_readiness_does(
    fresh_db: Database, tmp_path: Path
) -> None:
    app_role = fresh_db.settings.roles.app
    admin = fresh_db.sync_engine("admin")
    async with running_api(fresh_db, tmp_path) as api:
        assert (await api.client.get("/ready")).json()["database"] == "ok"
        await fresh_db.async_engine("app").dispose()  # no pooled connection to fall back on
        with admin.begin() as conn:
            conn.execute(sa.text(f'ALTER ROLE "{app_role}" CONNECTION LIMIT 0'))
        try:
            live = await api.client.get("/health")
            assert live.status_code == 200 and live.json()["status"] == "ok"
            assert "database" not in live.json()
            ready = await api.client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'ALTER ROLE "{app_role}" CONNECTION LIMIT -1'))
        assert (await api.client.get("/ready")).status_code == 200
