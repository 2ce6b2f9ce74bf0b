"""``carelog bench http`` drives the service and the minimal baseline in one run, each endpoint
with the same bounded load, and counts only successful answers."""

from __future__ import annotations

import pytest

from carelog.bench.http import as_rows, run_http_bench
from carelog.bench.load import LoadResult


def test_errors_are_never_throughput() -> None:
    result = LoadResult(requests=100, seconds=2.0, errors=100, p50_ms=1, p99_ms=2, generator="x")
    assert result.rate == 50 and result.ok_rate == 0


@pytest.mark.slow
def test_bench_http_measures_every_endpoint_beside_the_baseline() -> None:
    report = run_http_bench(seconds=1, connections=4, rounds=1, load="python", echo=lambda _: None)
    rows = {row["name"]: row for row in as_rows(report)}
    for name in (
        "baseline /hello",
        "baseline /tx (set_config + SELECT 1)",
        "GET /health",
        "GET records (PHI read, audited)",
        "POST records (encrypted write, audited)",
        "GET /api/audit/events?limit=50 (owner)",
    ):
        assert rows[name]["errors"] == 0, name  # every request answered 2xx
        assert rows[name]["rate"] > 0, name
        if name != "baseline /tx (set_config + SELECT 1)":
            assert rows[name]["paired"] > 0, name  # measured beside its own /tx slices
    assert report.generator == "python"
