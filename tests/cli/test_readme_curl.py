"""The README's "Try the API" curl session, run as written against a real `carelog up --demo`.

The commands are taken from between the ``<!-- curl-session -->`` markers of README.md and run
with bash (``-e -o pipefail``), with the venv's ``carelog`` first on PATH and the server's
CARELOG_DATA_DIR and CARELOG_PORT in the environment, so the README cannot rot: a renamed
endpoint, field or command, or a demo without a free event, fails here.
"""

from __future__ import annotations

import os
import re
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

README = Path(__file__).resolve().parents[2] / "README.md"
START_TIMEOUT = 90.0
SESSION_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0

pytestmark = pytest.mark.slow


def readme_session() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- curl-session -->\s*```bash\n(.*?)```\s*<!-- /curl-session -->", text, re.S
    )
    assert found, "README.md has no ```bash block between the curl-session markers"
    return found.group(1)


def test_readme_marks_a_three_curl_session() -> None:
    session = readme_session()
    curls = [line for line in session.splitlines() if "curl " in line]
    assert len(curls) == 3, curls
    assert "/api/meetings" in curls[0]
    assert "/api/appointments/$MEETING/records" in curls[1]
    assert "/api/audit/events" in curls[2]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: the embedded server's Unix socket lives under it (108-byte limit).
    path = Path(tempfile.mkdtemp(prefix="cl-rm-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARELOG_", "AUDITLOG_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "CARELOG_DATA_DIR": str(data_dir),
            "CARELOG_ENV": "development",
            "CARELOG_PORT": str(port),
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
            "COLUMNS": "250",
        }
    )
    return env


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"carelog up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"/health not 200 within {START_TIMEOUT}s:\n{log.read_text()}")


def test_readme_curl_session_works_against_carelog_up_demo(data_dir: Path) -> None:
    port = _free_port()
    env = _env(data_dir, port)
    log = data_dir / "up.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "carelog.cli.main", "up", "--demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            _wait_healthy(server, port, log)
            up_output = log.read_text()
            # `up --demo` tells a newcomer how to call the API at once.
            assert "development tokens" in up_output, up_output
            assert "carelog dev token --user user_demo_" in up_output, up_output
            assert "free event to book with POST /api/meetings" in up_output, up_output
            result = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", readme_session()],
                capture_output=True,
                text=True,
                env=env,
                cwd=data_dir,
                timeout=SESSION_TIMEOUT,
                check=False,
            )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nserver:\n{log.read_text()}"
    assert result.returncode == 0, report
    # 1. the booking (echoed to stderr by tee), 2. the record, 3. the audit trail with both.
    assert '"status":"booked"' in result.stderr, report
    assert '"record_id":' in result.stdout and '"version":1' in result.stdout, report
    assert '"action": "MEDICAL_RECORD_CREATED"' in result.stdout, report
    assert '"action": "APPOINTMENT_CREATED"' in result.stdout, report
    assert '"workos_user_id": "user_demo_ana_ferreira"' in result.stdout, report
