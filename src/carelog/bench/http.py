"""``carelog bench http``: the service's request path against a minimal FastAPI baseline.

In one run, on one machine: ``carelog up --demo`` (its own embedded PostgreSQL in a temporary
data directory, or ``--database-url``) and the minimal FastAPI + uvicorn app of
:mod:`carelog.bench.http_baseline` on the same database as the same app role. The same bounded
loopback load (:mod:`carelog.bench.load`) is driven at each endpoint in turn:

- baseline ``/hello`` and ``/tx`` (one transaction: ``set_config`` + ``SELECT 1``);
- ``GET /health`` (liveness) and ``GET /ready`` when the service has it (readiness);
- ``GET /api/appointments/{id}/records``: a PHI read, audited and fail-closed;
- ``POST /api/appointments/{id}/records``: an encrypted write audited in its transaction;
- ``GET /api/audit/events?limit=50``: an owner's first audit page;

With ``--workers N`` the service runs N worker processes and the baseline N processes on one
port, so both sides get the same cores.

Each endpoint is measured in ``rounds`` slices interleaved with slices of ``/tx`` of the same
length (``/tx``, endpoint, ``/tx``, endpoint, ...), and its ratio is its successful requests
over the paired ``/tx`` slices' successful requests: on a shared machine whose load drifts
during a run, both sides of each ratio see the same drift. Only 2xx answers count.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from carelog.bench.load import LoadResult, Request, drive, generator
from carelog.core.environment import child_environment

START_TIMEOUT = 120.0
#: Targets: each audited endpoint and the owner's page ≥ 0.5x the one-transaction baseline.
TARGET_AUDITED = 0.5
TARGET_HEALTH = 0.8


@dataclass
class Endpoint:
    name: str
    target: float | None
    result: LoadResult
    paired: LoadResult | None = None  # the /tx slices interleaved with this endpoint's


def merge(results: list[LoadResult]) -> LoadResult:
    """Slices of one measurement as one: totals, the median p50 and the worst p99."""
    p50s = sorted(r.p50_ms for r in results)
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.seconds for r in results),
        sum(r.errors for r in results),
        p50s[len(p50s) // 2],
        max(r.p99_ms for r in results),
        results[0].generator,
    )


@dataclass
class HttpBenchReport:
    generator: str
    connections: int
    seconds: float
    workers: int = 1
    endpoints: list[Endpoint] = field(default_factory=list)

    def ratio(self, endpoint: Endpoint) -> float:
        """Against the /tx slices interleaved with this endpoint's (1.0 for /tx itself)."""
        if endpoint.paired is None:
            return 1.0
        base = endpoint.paired.ok_rate
        return endpoint.result.ok_rate / base if base > 0 else float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _carelog(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "carelog.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"carelog {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer in {START_TIMEOUT:.0f} s:\n{log.read_text()[-2000:]}")


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            _wait_ready(ready_url, proc, log)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = child_environment(CARELOG_DATA_DIR=str(data_dir), CARELOG_ENV="development")
    if database_url:
        env["CARELOG_DATABASE_URL"] = database_url
    return env


def _app_conninfo(env: dict[str, str]) -> str:
    from carelog.core.settings import Settings
    from carelog.db.engine import Database

    database = Database.open(Settings.from_env(env))
    try:
        url = database.url_for("app")
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    finally:
        database.close()


@dataclass
class DemoAccess:
    user: str
    org: str
    owner_token: str
    expert_token: str
    meeting: str


def _demo_access(api: str, env: dict[str, str]) -> DemoAccess:
    """The first clinic's owner and a meeting whose records its expert can read."""
    org = json.loads(_carelog("demo", "seed", "--json", env=env))["orgs"][0]
    owner = next(u for u in org["users"] if u["role"] == "owner")["workos_user_id"]
    owner_token = _carelog(
        "dev", "token", "--user", owner, "--org", org["id"], "--role", "owner", env=env
    ).strip()
    experts = [u["workos_user_id"] for u in org["users"] if u["role"] == "expert"]
    for expert in experts:
        token = _carelog("dev", "token", "--user", expert, "--org", org["id"], env=env).strip()
        for meeting in org["meeting_ids"]:
            answer = httpx.get(
                f"{api}/api/appointments/{meeting}/records",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            if answer.status_code == 200 and answer.json().get("records"):
                return DemoAccess(owner, org["id"], owner_token, token, meeting)
    raise RuntimeError("the demo has no meeting with a record its expert can read")


def run_http_bench(
    *,
    seconds: float = 10.0,
    connections: int = 32,
    rounds: int = 3,
    workers: int = 1,
    load: str = "auto",
    database_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> HttpBenchReport:
    chosen = generator(load)
    workdir = Path(tempfile.mkdtemp(prefix="cl-bh-"))  # short: the server's socket lives here
    try:
        env = _env(workdir / "data", database_url)
        port, base_port = _free_port(), _free_port()
        api, base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{base_port}"
        echo(f"starting carelog up --demo --workers {workers} on :{port}")
        service = [
            sys.executable,
            "-m",
            "carelog.cli.main",
            "up",
            "--demo",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        with _process(service, env, workdir / "service.log", f"{api}/health"):
            access = _demo_access(api, env)
            conninfo = _app_conninfo(env)
            echo(f"starting the FastAPI baseline on :{base_port} ({workers} process(es))")
            baseline = [
                sys.executable,
                "-m",
                "carelog.bench.http_baseline",
                "--port",
                str(base_port),
                "--conninfo",
                conninfo,
                "--user",
                access.user,
                "--org",
                access.org,
            ]
            with ExitStack() as baselines:
                for n in range(workers):  # as many processes as the service has workers
                    log = workdir / f"baseline-{n}.log"
                    baselines.enter_context(_process(baseline, env, log, f"{base}/tx"))
                report = HttpBenchReport(chosen, connections, seconds, workers)
                _drive_all(report, api, base, access, rounds, echo)
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _drive_all(
    report: HttpBenchReport,
    api: str,
    base: str,
    access: DemoAccess,
    rounds: int,
    echo: Callable[[str], None],
) -> None:
    expert = {"Authorization": f"Bearer {access.expert_token}"}
    owner = {"Authorization": f"Bearer {access.owner_token}"}
    records = f"{api}/api/appointments/{access.meeting}/records"
    body = json.dumps({"content": "Follow-up: knee pain improving; continue exercises."}).encode()
    ready = httpx.get(f"{api}/ready", timeout=10).status_code == 200
    tx = Request("GET", f"{base}/tx")
    plan: list[tuple[str, float | None, Request]] = [
        ("baseline /hello", None, Request("GET", f"{base}/hello")),
        ("GET /health", TARGET_HEALTH, Request("GET", f"{api}/health")),
        *([("GET /ready", None, Request("GET", f"{api}/ready"))] if ready else []),
        ("GET records (PHI read, audited)", TARGET_AUDITED, Request("GET", records, expert)),
        (
            "POST records (encrypted write, audited)",
            TARGET_AUDITED,
            Request("POST", records, {**expert, "Content-Type": "application/json"}, body),
        ),
        (
            "GET /api/audit/events?limit=50 (owner)",
            TARGET_AUDITED,
            Request("GET", f"{api}/api/audit/events?limit=50", owner),
        ),
    ]
    c, piece = report.connections, max(1.0, report.seconds / rounds)
    drive(tx, c, 1.0, report.generator)  # warm-up: pools, caches
    all_tx: list[LoadResult] = []
    for name, target, req in plan:
        drive(req, c, 1.0, report.generator)
        echo(f"{name}: {c} connections, {rounds} x {piece:.0f} s interleaved with /tx")
        mine: list[LoadResult] = []
        paired: list[LoadResult] = []
        for _ in range(rounds):
            paired.append(drive(tx, c, piece, report.generator))
            mine.append(drive(req, c, piece, report.generator))
        all_tx.extend(paired)
        report.endpoints.append(Endpoint(name, target, merge(mine), merge(paired)))
    report.endpoints.insert(
        0, Endpoint("baseline /tx (set_config + SELECT 1)", None, merge(all_tx))
    )


def as_rows(report: HttpBenchReport) -> list[dict[str, Any]]:
    """Plain rows for printing: name, req/s, p50, p99, errors, ratio, target."""
    return [
        {
            "name": e.name,
            "rate": e.result.ok_rate,
            "p50": e.result.p50_ms,
            "p99": e.result.p99_ms,
            "errors": e.result.errors,
            "ratio": report.ratio(e),
            "paired": None if e.paired is None else e.paired.ok_rate,
            "target": e.target,
        }
        for e in report.endpoints
    ]


__all__ = ["HttpBenchReport", "as_rows", "run_http_bench"]
