"""`carelog up --workers 3` under audited HTTP load: kill -9 one worker (the leader) while every
writer is spooling; afterwards every acknowledged event is stored exactly once, the dead
worker's spool file has been replayed by a survivor, another worker leads, the trail verifies.

Acknowledged = an audit-log query answered 200 (its AUDIT_LOG_QUERIED event goes through the
group-commit writer); each request carries its own X-Request-ID, which the event records.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from test_up_lifecycle import data_dir, env_for, free_port, gone, start, stop, wait_healthy

__all__ = ["data_dir"]

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def admin_conninfo(data: Path) -> str:
    lines = (data / "pgdata" / "postmaster.pid").read_text().splitlines()
    return f"host={lines[4]} port={lines[3]} user=postgres dbname=carelog"


def owner_token(log: Path) -> str:
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("owner of "):
            return lines[i + 1].strip()
    pytest.fail(f"no owner token in the output:\n{log.read_text()}")


def workers_seen(port: int, want: int, limit: float = 90.0) -> dict[int, bool]:
    """pid -> leads?, from /health, until ``want`` distinct workers answered."""
    seen: dict[int, bool] = {}
    end = time.monotonic() + limit
    while time.monotonic() < end and len(seen) < want:
        try:
            r = httpx.get(
                f"http://127.0.0.1:{port}/health", headers={"Connection": "close"}, timeout=5
            )
            audit = r.json()["audit"]
            seen[int(audit["pid"])] = bool(audit["leader"])
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    return seen


def test_kill_9_one_worker_of_three_under_load(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "up.log"
    port = free_port()
    proc = start(data_dir, port, log, "--workers", "3", "--demo")
    try:
        wait_healthy(proc, port, log)
        pids = workers_seen(port, 3)
        assert len(pids) == 3, pids
        leaders = [pid for pid, lead in pids.items() if lead]
        victim = leaders[0] if leaders else next(iter(pids))
        token = owner_token(log)
        acked: set[str] = set()
        failed = 0
        stop_load = threading.Event()
        lock = threading.Lock()

        def client(t: int) -> None:
            nonlocal failed
            i = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                while not stop_load.is_set():
                    rid = f"w{t}-{i}"
                    i += 1
                    try:
                        r = http.get(
                            "/api/audit/events?limit=1",
                            headers={
                                "Authorization": f"Bearer {token}",
                                "X-Request-ID": rid,
                                "Connection": "close",  # spread requests over the workers
                            },
                        )
                    except httpx.HTTPError:
                        with lock:
                            failed += 1
                        continue
                    with lock:
                        if r.status_code == 200:
                            acked.add(rid)
                        else:
                            failed += 1

        threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        # Writers block on inserts (SHARE blocks INSERT, not the query's SELECT): they spool.
        with psycopg.connect(admin_conninfo(data_dir)) as conn:
            conn.execute("LOCK TABLE audit_logs IN SHARE MODE")
            time.sleep(1.5)
            subprocess.run(["kill", "-9", str(victim)], check=True)
            time.sleep(1.0)
            conn.commit()
        time.sleep(3.0)
        stop_load.set()
        for thread in threads:
            thread.join()

        spool = data_dir / "audit-spool"
        end = time.monotonic() + 60
        while time.monotonic() < end and list(spool.glob("spool-*.jsonl")):
            time.sleep(0.5)
        left = sorted(p.name for p in spool.glob("spool-*.jsonl"))
        after = workers_seen(port, 3, limit=60)
        with psycopg.connect(admin_conninfo(data_dir)) as conn:
            # A request id is the server's own (32 hex digits), '-', then the client's X-Request-ID.
            rows = conn.execute(
                "SELECT substr(request_id, 34), count(*) FROM audit_logs "
                "WHERE action = 'AUDIT_LOG_QUERIED' AND substr(request_id, 34) = ANY(%s) GROUP BY 1",
                (list(acked),),
            ).fetchall()
            spooled = conn.execute(
                "SELECT count(*) FROM audit_logs WHERE action = 'AUDIT_LOG_QUERIED' "
                "AND source = 'spool'"
            ).fetchone()
        stored = len(rows)
        duplicated = sum(1 for _, n in rows if n > 1)
        verify = subprocess.run(
            [sys.executable, "-m", "carelog.cli.main", "audit", "verify"],
            env=env_for(data_dir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        with capsys.disabled():
            print(
                f"\n[fault] kill -9 one worker of 3 (the leader, while spooling): "
                f"acknowledged={len(acked)}, stored={stored}, lost={len(acked) - stored}, "
                f"duplicated={duplicated}, failed_requests={failed}, "
                f"stored_via_spool={spooled[0] if spooled else 0}, spool_files_left={len(left)}, "
                f"leaders_after={sum(after.values())}, verify_exit={verify.returncode}"
            )
        assert victim not in after
        assert len(acked) > 100
        assert stored == len(acked)
        assert duplicated == 0
        assert left == []
        assert spooled and spooled[0] > 0, "the lock did not make the writers spool"
        assert sum(after.values()) == 1, after
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        if proc.poll() is None:
            stop(proc, signal.SIGINT, log)
    assert gone(data_dir), log.read_text()
