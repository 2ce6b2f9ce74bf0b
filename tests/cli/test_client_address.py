"""The recorded client address cannot be forged through a real ``carelog up`` server.

uvicorn is run with carelog's own configuration on a loopback port; a client that sends
``X-Forwarded-For``/``Forwarded`` or another request's ``X-Request-ID`` gets none of them
recorded, and the access log keeps paths without their query strings.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from carelog.cli.up_command import server_config
from carelog.db.engine import Database
from carelog.platform.auth.tokens import DevTokenSigner
from carelog.runtime import Runtime
from carelog.web.app import create_app
from world import World, build_world


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(fresh_db: Database, tmp_path: Path) -> Iterator[tuple[str, World, DevTokenSigner]]:
    world = build_world(fresh_db.sync_engine("admin"))
    signer = DevTokenSigner(os.urandom(32))
    runtime = Runtime(
        fresh_db.settings, fresh_db, spool_dir=tmp_path / "spool", token_verifier=signer
    )
    app = create_app(runtime)
    port = _free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", world, signer
    server.should_exit = True
    thread.join(timeout=15)


SPOOFS: list[dict[str, str]] = [
    {"X-Forwarded-For": "6.6.6.6"},
    {"X-Forwarded-For": "6.6.6.6, 127.0.0.1"},
    {"Forwarded": "for=6.6.6.6"},
    {"Forwarded": 'for="[2001:db8::6]:443";proto=https'},
    {"X-Real-IP": "6.6.6.6"},
]


def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    served: tuple[str, World, DevTokenSigner],
    fresh_db: Database,
    caplog: pytest.LogCaptureFixture,
    attack_count: Any,
) -> None:
    base, world, signer = served
    a = world.a
    token = signer.issue(a.owner, str(a.org_id), role="member")
    victim_request = "0123456789abcdef0123456789abcdef"
    with caplog.at_level(logging.INFO, logger="uvicorn.access"), httpx.Client() as client:
        for spoof in SPOOFS:
            r = client.get(
                f"{base}/api/audit/events",
                params={"data_subject_id": "patient_secret", "limit": 1},
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Request-ID": victim_request,
                    **spoof,
                },
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-request-id"] != victim_request
            assert r.headers["x-request-id"].endswith("-" + victim_request)
    with fresh_db.sync_engine("admin").connect() as conn:
        rows = conn.execute(
            sa.text(
                "select host(ip_address) as ip, request_id from audit_logs "
                "where action = 'AUDIT_LOG_QUERIED' and org_id = :o"
            ),
            {"o": a.org_id},
        ).all()
    assert len(rows) == len(SPOOFS)
    assert {ip for ip, _ in rows} == {"127.0.0.1"}
    assert victim_request not in {rid for _, rid in rows}
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "uvicorn.access")
    assert "/api/audit/events" in logged
    assert "patient_secret" not in logged
    attack_count("tokens: forged client address / request id headers", len(SPOOFS))
