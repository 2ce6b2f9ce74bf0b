"""Bounded loopback HTTP load for ``carelog bench http``: a fixed number of keep-alive
connections, each sending its next request as soon as the previous answer arrived (closed loop),
for a fixed time. Nothing is open-ended: connections, duration and a request cap are bounded.

Two generators, the same load:

- ``wrk`` (Debian's package), when it is on ``PATH``: written in C, it needs a fraction of the
  CPU the servers get, which matters on a 2-core machine where the generator competes with them;
- otherwise a Python generator (``httpx``, one asyncio loop) *in a separate process*, so it
  never shares an interpreter or an event loop with what it measures. It costs more CPU per
  request than wrk, so it is the less generous yardstick for fast endpoints; both servers get
  the same generator in one run, so the ratios stay comparable.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from carelog.bench import percentile


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int  # non-2xx answers and transport errors
    p50_ms: float
    p99_ms: float
    generator: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok_rate(self) -> float:
        """Successful answers per second: an error is never throughput."""
        return max(0, self.requests - self.errors) / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- Python/httpx
async def _python_load(req: Request, connections: int, seconds: float, cap: int) -> LoadResult:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    errors = 0
    done = 0
    clock = time.perf_counter
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        deadline = clock() + seconds

        async def worker() -> None:
            nonlocal errors, done
            while clock() < deadline and done < cap:
                t0 = clock()
                try:
                    response = await client.request(
                        req.method, req.url, headers=req.headers, content=req.body
                    )
                    ok = 200 <= response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                latencies.append((clock() - t0) * 1000)
                done += 1
                errors += not ok

        start = clock()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = clock() - start
    latencies.sort()
    return LoadResult(
        len(latencies),
        elapsed,
        errors,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        "python",
    )


def _python_child(
    req: Request, connections: int, seconds: float, cap: int, out: multiprocessing.Queue[object]
) -> None:
    out.put(asyncio.run(_python_load(req, connections, seconds, cap)))


def python_load(req: Request, connections: int, seconds: float, cap: int = 1_000_000) -> LoadResult:
    """The Python generator, in a child process of its own."""
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_python_child, args=(req, connections, seconds, cap, queue))
    child.start()
    try:
        result = queue.get(timeout=seconds + 120)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert isinstance(result, LoadResult)
    return result


# --------------------------------------------------------------------------- wrk
_LUA = """wrk.method = {method}
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  io.write(string.format("carelog-p50-us %d\\ncarelog-p99-us %d\\n",
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_load(req: Request, connections: int, seconds: float, threads: int = 2) -> LoadResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise FileNotFoundError("wrk")
    headers = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in req.headers.items()
    )
    script = _LUA.format(
        method=_lua_string(req.method),
        body="nil" if req.body is None else _lua_string(req.body.decode()),
        headers=headers,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "load.lua"
        path.write_text(script)
        run = subprocess.run(  # noqa: S603 - wrk from PATH, our own script
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(path),
                req.url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        )
    text = run.stdout
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    if found is None:
        raise RuntimeError(f"unexpected wrk output: {text!r}")
    requests = int(found.group(1))
    elapsed = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    p50 = re.search(r"carelog-p50-us (\d+)", text)
    p99 = re.search(r"carelog-p99-us (\d+)", text)
    return LoadResult(
        requests,
        elapsed,
        errors,
        int(p50.group(1)) / 1000 if p50 else float("nan"),
        int(p99.group(1)) / 1000 if p99 else float("nan"),
        "wrk",
    )


def generator(choice: str) -> str:
    """``auto`` picks wrk when it is installed, else the Python generator."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and shutil.which("wrk") is None:
        raise FileNotFoundError("wrk is not installed (apt-get install wrk), use --load python")
    return choice


def drive(req: Request, connections: int, seconds: float, choice: str) -> LoadResult:
    if generator(choice) == "wrk":
        return wrk_load(req, connections, seconds)
    return python_load(req, connections, seconds)


__all__ = ["LoadResult", "Request", "drive", "generator", "python_load", "wrk_load"]
