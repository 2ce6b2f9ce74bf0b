"""`carelog up --demo` as a person runs it: embedded database, demo data, health, Ctrl-C, restart.

Always the default path (embedded PostgreSQL in CARELOG_DATA_DIR), even when the rest of the
suite runs against CARELOG_TEST_DATABASE_URL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: the embedded server's Unix socket lives under it (108-byte limit).
    path = Path(tempfile.mkdtemp(prefix="cl-up-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARELOG_", "AUDITLOG_", "STRIPE_"))
    }
    # COLUMNS: rich wraps output to 80 columns when it is not a terminal.
    env.update({"CARELOG_DATA_DIR": str(data_dir), "CARELOG_ENV": "development", "COLUMNS": "250"})
    return env


def _run_once(data_dir: Path, log: Path, while_up: Callable[[str], None] | None = None) -> str:
    """Start `carelog up --demo`, wait for a healthy API, Ctrl-C it; return its output."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "carelog.cli.main", "up", "--demo", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(data_dir),
        )
        try:
            body = _wait_healthy(proc, port, log)
            assert body["status"] == "ok"
            assert "database" not in body  # liveness only: no I/O
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5.0)
            assert ready.status_code == 200 and ready.json()["database"] == "ok"
            if while_up is not None:
                while_up(log.read_text())
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"carelog up ignored Ctrl-C for {STOP_TIMEOUT}s:\n{log.read_text()}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code in (0, 130), text
    assert "Traceback" not in text
    return text


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> dict[str, object]:
    deadline = time.monotonic() + START_TIMEOUT
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"carelog up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            body = response.json()
            assert isinstance(body, dict)
            return body
        time.sleep(0.3)
    pytest.fail(f"/health not 200 within {START_TIMEOUT}s:\n{log.read_text()}")


def _demo_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("demo data:")]
    assert len(lines) == 1, output
    return lines[0]


def _send_the_printed_stripe_event(output: str) -> None:
    """The ready-made signed test event `up --demo` prints, run as printed (bash, openssl)."""
    [line] = [x for x in output.splitlines() if x.strip().startswith("signed test event: ")]
    command = line.split("signed test event: ", 1)[1]
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"status":"ignored"' in result.stdout.replace(" ", ""), result.stdout


@pytest.mark.slow
def test_up_demo_serves_stops_and_restarts_on_the_same_data(data_dir: Path) -> None:
    first_output = _run_once(data_dir, data_dir / "first.log", _send_the_printed_stripe_event)
    assert "STRIPE_WEBHOOK_SECRET=whsec_dev_" in first_output
    assert "stripe listen --forward-to http://127.0.0.1:" in first_output
    first = _demo_line(first_output)
    assert "demo-lisbon" in first and "demo-porto" in first
    assert "created" in first and "nothing created" not in first

    keys = data_dir / "record-keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    key_text = keys.read_text()

    secret = (data_dir / "stripe-webhook-secret").read_text().strip()
    assert stat.S_IMODE((data_dir / "stripe-webhook-secret").stat().st_mode) == 0o600
    second_output = _run_once(data_dir, data_dir / "second.log")
    assert f"STRIPE_WEBHOOK_SECRET={secret}" in second_output  # the same secret after a restart
    second = _demo_line(second_output)
    assert "demo-lisbon" in second and "demo-porto" in second
    assert "already present, nothing created" in second
    assert keys.read_text() == key_text
