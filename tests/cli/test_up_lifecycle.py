"""`carelog up` owns what it starts: SIGTERM, Ctrl-C after an earlier kill -9, a busy port.

Each test runs the real command on an embedded PostgreSQL in a data directory of its own and
looks at the postmaster's pid afterwards: it must be gone whenever `carelog up` exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.fault, pytest.mark.slow]

START_TIMEOUT = 180.0  # a busy 2-core CI machine
STOP_TIMEOUT = 60.0


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cl-life-"))  # short: the Unix socket lives under it
    yield path
    pid = postmaster_pid(path)
    if pid is not None:  # never leave a server behind, even when the test failed
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            if postmaster_pid(path) is None:
                break
            time.sleep(0.1)
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARELOG_", "AUDITLOG_"))}
    env.update({"CARELOG_DATA_DIR": str(data_dir), "CARELOG_ENV": "development", "COLUMNS": "250"})
    return env


def start(data_dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "carelog.cli.main", "up", "--port", str(port), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env_for(data_dir),
        )


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> dict[str, object]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"carelog up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0)
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 200:
            body: dict[str, object] = r.json()
            return body
        time.sleep(0.3)
    pytest.fail(f"/health not 200 within {START_TIMEOUT}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], sig: int, log: Path) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"carelog up ignored signal {sig} for {STOP_TIMEOUT}s:\n{log.read_text()}")


def gone(data_dir: Path, limit: float = 10.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if postmaster_pid(data_dir) is None:
            return True
        time.sleep(0.2)
    return False


def test_sigterm_stops_the_embedded_postgres(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    port = free_port()
    proc = start(data_dir, port, log)
    wait_healthy(proc, port, log)
    assert postmaster_pid(data_dir) is not None
    code = stop(proc, signal.SIGTERM, log)
    text = log.read_text()
    assert gone(data_dir), f"PostgreSQL still running after SIGTERM (exit {code}):\n{text}"
    assert "Traceback" not in text


def test_ctrl_c_after_an_earlier_kill_9_still_stops_postgres(
    data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    port = free_port()
    first = start(data_dir, port, log)
    wait_healthy(first, port, log)
    first.kill()  # kill -9: no cleanup at all; PostgreSQL survives it
    first.wait()
    assert postmaster_pid(data_dir) is not None
    second = start(data_dir, port, log)
    wait_healthy(second, port, log)
    stop(second, signal.SIGINT, log)
    assert gone(data_dir), f"PostgreSQL left running:\n{log.read_text()}"


def test_busy_port_fails_before_anything_starts(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        proc = start(data_dir, port, log)
        code = proc.wait(timeout=60)
        took = time.monotonic() - t0
    text = log.read_text()
    assert code != 0, text
    assert f"127.0.0.1:{port}" in text and "CARELOG_PORT" in text, text
    assert "Traceback" not in text
    assert not (data_dir / "pgdata").exists(), "the database was started before the port check"
    assert "schema at revision" not in text
    assert took < 90  # no migration, no seed, no server start: only imports
