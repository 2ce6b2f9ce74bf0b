"""Several workers serve one viewer: a form rendered by one process is accepted by another.

``carelog up --workers N`` puts N processes behind one port, so a browser's POST often lands on a
different worker than the page it came from. Each worker builds its own Runtime from the same
settings; the CSRF key must therefore come from the deployment's secrets, not the process.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from test_viewer_http import Env

from carelog.runtime import Runtime
from carelog.web.app import create_app


async def test_a_csrf_token_from_one_worker_is_accepted_by_another(
    env: Env, tmp_path: Path
) -> None:
    a = env.world.a
    env.login(a.owner, a.org_id)
    page = await env.client.get("/audit")
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, "the page carries no CSRF token"
    other = Runtime(
        env.db.settings, env.db, spool_dir=tmp_path / "spool-2", token_verifier=env.signer
    )
    app = create_app(other)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", cookies=env.client.cookies
        ) as second_worker:
            r = await second_worker.post(
                "/audit/integrity/verify", data={"csrf_token": found.group(1)}
            )
    assert r.status_code in (200, 303), (r.status_code, r.text[:300])
