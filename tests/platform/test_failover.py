"""A database failover survived: primary + synchronous standby, kill -9 the primary under a
steady audited load, promote the standby; every acknowledged event is on the new primary
exactly once, the trail verifies, the medical records decrypt.

Both servers are started here from the PostgreSQL binaries pgserver ships (as the unprivileged
``pgserver`` user when the tests run as root), on loopback ports the OS picked; the service
reaches them through one multi-host URL with ``target_session_attrs=read-write``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
from api_harness import running_api
from sqlalchemy.engine import make_url

from carelog.core.settings import Settings
from carelog.db import migrate
from carelog.db.engine import Database
from dbtools import TestServer
from fault_env import wait_replayed

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SECRET = "PHI-FAILOVER diagnosis"


def _bin(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    primary_port: int
    standby_port: int
    user: str | None

    @property
    def primary(self) -> Path:
        return self.root / "primary"

    @property
    def standby(self) -> Path:
        return self.root / "standby"

    def run(self, *args: str) -> None:
        done = subprocess.run(
            list(args), user=self.user, capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if done.returncode != 0:
            raise AssertionError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def pg_ctl(self, pgdata: Path, *args: str) -> None:
        self.run(_bin("pg_ctl"), "-D", str(pgdata), "-l", str(pgdata) + ".log", "-w", *args)

    def url(self, port: int, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname={database}"

    def postmaster(self, pgdata: Path) -> int | None:
        try:
            return int((pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_9(self, pgdata: Path) -> None:
        """SIGKILL the postmaster and every backend: a crash, not a shutdown."""
        pid = self.postmaster(pgdata)
        assert pid is not None
        proc = psutil.Process(pid)
        victims = [proc, *proc.children(recursive=True)]
        for victim in victims:
            os.kill(victim.pid, signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)

    def stop_all(self) -> None:
        for pgdata in (self.primary, self.standby):
            pid = self.postmaster(pgdata)
            if pid is not None and psutil.pid_exists(pid):
                os.kill(pid, signal.SIGINT)  # fast shutdown
                with_timeout = time.monotonic() + 20
                while psutil.pid_exists(pid) and time.monotonic() < with_timeout:
                    time.sleep(0.1)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="cl-ha-"))
    user = "pgserver" if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    c = Cluster(root, _free_port(), _free_port(), user)
    try:
        c.run(_bin("initdb"), "-D", str(c.primary), "-U", "postgres", "-A", "trust", "-N")
        with (c.primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {c.primary_port}\n"
                f"unix_socket_directories = '{root}'\nwal_level = replica\n"
                "max_wal_senders = 5\nsynchronous_standby_names = 'standby1'\n"
                "synchronous_commit = on\nmax_connections = 100\n"
            )
        c.pg_ctl(c.primary, "start")
        c.run(
            _bin("pg_basebackup"),
            "-h", "127.0.0.1", "-p", str(c.primary_port), "-U", "postgres",
            "-D", str(c.standby), "-R", "-X", "stream",
        )  # fmt: skip
        with (c.standby / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"port = {c.standby_port}\n"
                f"primary_conninfo = 'host=127.0.0.1 port={c.primary_port} user=postgres "
                "application_name=standby1'\n"
                # once promoted it has no standby of its own: it must not wait for one
                "synchronous_standby_names = ''\n"
            )
        c.pg_ctl(c.standby, "start")
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            with psycopg.connect(c.url(c.primary_port)) as conn:
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'"
                ).fetchone()
            state = row[0] if row else None
            if state == "sync":
                break
            time.sleep(0.2)
        assert state == "sync", f"the standby is not synchronous: {state}"
        yield c
    finally:
        c.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carelog.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_kill_9_the_primary_and_promote_the_standby(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = TestServer(
        make_url(f"postgresql+psycopg://postgres@127.0.0.1:{cluster.primary_port}/postgres"),
        kind="failover",
    )
    name = server.create_database()
    first = server.database(name)
    migrate.upgrade(first)
    first.close()
    url = (
        f"postgresql://postgres@/{name}?host=127.0.0.1:{cluster.primary_port}"
        f"&host=127.0.0.1:{cluster.standby_port}&target_session_attrs=read-write"
    )
    environ = {
        "CARELOG_DATABASE_URL": url,
        "CARELOG_ROLE_PREFIX": server.prefix,
        "CARELOG_ENV": "development",
        "CARELOG_DATA_DIR": str(tmp_path / "data"),
    }
    cli_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CARELOG_")},
        **environ,
    }
    db = Database.open(Settings.from_env(environ))
    acked: set[str] = set()  # request ids of audited reads answered 200
    records: set[str] = set()  # records created (201): their event is in the same transaction
    failures = 0
    try:
        async with running_api(db, tmp_path) as api:
            a = api.world.a
            writer = api.runtime.audit.writer
            writer.deadline = 0.5
            meeting = a.ids["meeting"]
            # The test world carries placeholder seals (for its RLS tests): a real trail here.
            api.execute(
                "SET LOCAL session_replication_role = replica; "
                "DELETE FROM audit_checkpoints; DELETE FROM audit_seals; "
                "DELETE FROM audit_seal_state"
            )
            sealed = await asyncio.to_thread(cli, cli_env, "audit", "seal")
            assert sealed.returncode == 0, sealed.stdout + sealed.stderr
            stop = asyncio.Event()

            async def reader(t: int) -> None:
                nonlocal failures
                i = 0
                while not stop.is_set():
                    rid = f"q{t}-{i}"
                    i += 1
                    path = (
                        "/api/audit/events?limit=1"
                        if t % 2
                        else f"/api/appointments/{meeting}/records"
                    )
                    user = a.owner if t % 2 else a.expert
                    r = await api.client.get(
                        path, headers={**api.auth(user, a.org_id), "X-Request-ID": rid}
                    )
                    if r.status_code == 200:
                        acked.add(rid)
                    else:
                        failures += 1
                        await asyncio.sleep(0.05)

            async def writer_task() -> None:
                nonlocal failures
                while not stop.is_set():
                    r = await api.client.post(
                        f"/api/appointments/{meeting}/records",
                        json={"content": SECRET},
                        headers=api.auth(a.expert, a.org_id),
                    )
                    if r.status_code == 201:
                        records.add(r.json()["record_id"])
                    else:
                        failures += 1
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.02)

            tasks = [asyncio.create_task(reader(t)) for t in range(4)]
            tasks.append(asyncio.create_task(writer_task()))
            await asyncio.sleep(3.0)
            before = (len(acked), len(records))
            await asyncio.to_thread(cluster.kill_9, cluster.primary)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(cluster.pg_ctl, cluster.standby, "promote")
            await asyncio.sleep(5.0)
            stop.set()
            await asyncio.gather(*tasks)
            await wait_replayed(writer, limit=30)
            final = await api.client.get(
                f"/api/appointments/{meeting}/records", headers=api.auth(a.expert, a.org_id)
            )
            assert final.status_code == 200, final.text
            shown = {rec["id"]: rec["content"] for rec in final.json()["records"]}
            spooled = writer.stats.spooled
    finally:
        await db.dispose()
        db.close()
    with psycopg.connect(cluster.url(cluster.standby_port, name)) as conn:
        # A request id is the server's own (32 hex digits), '-', then the client's X-Request-ID.
        rows = conn.execute(
            "SELECT substr(request_id, 34), count(*) FROM audit_logs WHERE substr(request_id, 34) = ANY(%s) "
            "AND action IN ('AUDIT_LOG_QUERIED', 'MEDICAL_RECORD_VIEWED') GROUP BY 1",
            (list(acked),),
        ).fetchall()
        created = conn.execute(
            "SELECT resource_id, count(*) FROM audit_logs "
            "WHERE action = 'MEDICAL_RECORD_CREATED' AND resource_id = ANY(%s) GROUP BY 1",
            (list(records),),
        ).fetchall()
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    stored = len(rows)
    duplicated = sum(1 for _, n in rows if n > 1) + sum(1 for _, n in created if n > 1)
    sealed = await asyncio.to_thread(cli, cli_env, "audit", "seal")
    verify = await asyncio.to_thread(cli, cli_env, "audit", "verify")
    report = (
        f"\n[fault] kill -9 the primary, promote the synchronous standby: "
        f"acknowledged={len(acked)} (+{len(records)} records), stored={stored} "
        f"(+{len(created)}), lost={len(acked) - stored + len(records) - len(created)}, "
        f"duplicated={duplicated}, before_kill={before}, failed_requests={failures}, "
        f"spooled={spooled}, decrypted={sum(shown.get(r) == SECRET for r in records)}, "
        f"verify_exit={verify.returncode}"
    )
    with capsys.disabled():
        print(report)
    assert in_recovery == (False,)
    assert len(acked) > before[0] > 0 and len(records) > before[1] > 0, report
    assert stored == len(acked), report
    assert len(created) == len(records), report
    assert duplicated == 0, report
    assert all(shown.get(r) == SECRET for r in records), report
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    assert verify.returncode == 0, verify.stdout + verify.stderr
