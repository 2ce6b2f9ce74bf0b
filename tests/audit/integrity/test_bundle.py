"""Export bundles with proofs: verified offline with the database stopped, and any single
changed byte makes verification fail.

The database is an embedded server of this module's own, because the test stops it.
"""

from __future__ import annotations

import functools
import operator
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from integrity_env import Integrity
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from carelog.audit.api import configure_audit
from carelog.audit.export import ExportReceipt, export_audit_logs
from carelog.audit.filters import AuditFilters
from carelog.audit.integrity import SigningKeyring, generate_key
from carelog.audit.integrity.bundle import verify_bundle
from carelog.audit.integrity.sealer import Sealer
from carelog.audit.setup import create_audit_service
from carelog.cli import integrity_commands
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog
from dbtools import TestServer
from world import build_world


@pytest.fixture(scope="module")
def own_server() -> Iterator[tuple[TestServer, Any]]:
    tmpdir = tempfile.mkdtemp(prefix="carelog-bundle-pg-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        handle = pgserver.get_server(tmpdir, cleanup_mode="stop")
    url = make_url(handle.get_uri()).set(drivername="postgresql+psycopg")
    server = TestServer(url, kind="embedded", handle=handle, tmpdir=tmpdir)
    yield server, handle
    server.stop()


def _pg_ctl(handle: Any, *args: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands

    _commands.pg_ctl(  # type: ignore[attr-defined]
        list(args), pgdata=handle.pgdata, user=handle.system_user, timeout=60
    )


async def _bundle(server: TestServer, tmp: Path) -> tuple[bytes, SigningKeyring, int]:
    name = server.migrated_template()
    db = server.database(name)
    world = build_world(db.sync_engine("admin"))
    keyring = SigningKeyring.from_seed(generate_key()[1], "bundle-k1")
    scopes = Scopes(db)
    env = Integrity(db, world, scopes, keyring, Sealer(scopes, keyring), uuid.uuid4(), uuid.uuid4())
    # org A's world rows include a placeholder seal; use a clean org with an admin member
    env.org = uuid.uuid4()
    with db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO organizations (id, workos_org_id, slug, name, type) "
                "VALUES (:id, 'org_bundle', 'bundle', 'Bundle', 'clinic')"
            ),
            {"id": env.org},
        )
        conn.execute(
            sa.text(
                "INSERT INTO user_org_memberships (workos_user_id, org_id, role) "
                "VALUES (:u, :o, 'owner')"
            ),
            {"u": world.a.owner, "o": env.org},
        )
    env.add(9)
    await env.sealer.seal_once()
    env.add(4, start=9)
    await env.sealer.seal_once()
    service = create_audit_service(db, build_catalog(), spool_dir=tmp / "spool")
    configure_audit(service)
    await service.start()
    receipt = ExportReceipt()
    chunks = []
    try:
        async with scopes.org_scope(world.a.owner, env.org) as session:
            async for chunk in export_audit_logs(
                session,
                env.org,
                world.a.owner,
                AuditFilters(),
                "jsonl",
                receipt=receipt,
                with_proofs=True,
                public_keys=keyring.public_keys(),
            ):
                chunks.append(chunk)
    finally:
        await service.stop()
        configure_audit(None)
        await db.dispose()
        db.close()
    return b"".join(chunks), keyring, receipt.row_count


async def test_bundle_verifies_offline_with_the_database_stopped(
    own_server: tuple[TestServer, Any], tmp_path: Path
) -> None:
    server, handle = own_server
    data, keyring, rows = await _bundle(server, tmp_path)
    assert rows == 13
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(data)
    pinned = [f"{k}:{v}" for k, v in keyring.public_keys().items()]
    socket_dir = str(handle.get_postmaster_info().socket_dir)
    _pg_ctl(handle, "-w", "-m", "fast", "stop")
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(
                server.admin_url.set(drivername="postgresql").render_as_string(hide_password=False),
                connect_timeout=2,
            )
        runner = CliRunner()
        args = [
            "verify",
            "--bundle",
            str(path),
            *functools.reduce(operator.iadd, (["--public-key", p] for p in pinned), []),
        ]
        result = runner.invoke(integrity_commands.app, args, env={"CARELOG_DATABASE_URL": ""})
        assert result.exit_code == 0, result.output
        assert "OK   bundle" in result.stdout and "13 events" in result.stdout
        # every single-byte change is caught (a sample of positions on every line)
        lines = data.split(b"\n")
        offsets, at = [], 0
        for line in lines:
            if line:
                offsets += sorted(
                    {at, at + len(line) // 3, at + len(line) // 2, at + len(line) - 2}
                )
            at += len(line) + 1
        for offset in offsets:
            changed = bytearray(data)
            changed[offset] = changed[offset] ^ 0x01
            report = verify_bundle(bytes(changed).splitlines(keepends=True), keyring.public_keys())
            assert not report.ok, f"byte {offset} changed but the bundle still verified"
        # a key the bundle was not signed with
        other = SigningKeyring.from_seed(generate_key()[1], "bundle-k1").public_keys()
        assert not verify_bundle(data.splitlines(keepends=True), other).ok
        # one line dropped
        assert not verify_bundle(
            [*data.splitlines(keepends=True)[:4], *data.splitlines(keepends=True)[5:]],
            keyring.public_keys(),
        ).ok
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(data.replace(b'"seq":5,', b'"seq":6,', 1))
        failed = runner.invoke(integrity_commands.app, ["verify", "--bundle", str(bad)], env={})
        assert failed.exit_code == 1 and "FAIL bundle" in failed.stdout
    finally:
        _pg_ctl(
            handle, "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(handle.log), "start"
        )
