"""``carelog bench export`` measures the export beside a raw COPY of the very same rows."""

from __future__ import annotations

import pytest

from carelog.bench.export import run_export_bench
from dbtools import TestServer


@pytest.mark.slow
def test_bench_export_compares_the_same_rows(pg: TestServer) -> None:
    url = pg.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    report = run_export_bench(events=3000, rounds=2, database_url=url, echo=lambda _: None)
    assert len(report.baseline.seconds) == 2 and report.baseline.rate > 0
    jsonl, csv, tenth = report.runs
    for run in (jsonl, csv):
        assert len(run.seconds) == 2 and run.rate > 0 and run.peak_mib
    # the same rows on both sides: the JSONL export is the baseline's size give or take the
    # formatting (no row missing, none duplicated); the memory probe stopped early (after
    # whole chunks of 1,000 rows: a third of this small run)
    assert 0.6 < jsonl.bytes / report.baseline.bytes < 1.6
    assert tenth.bytes < jsonl.bytes / 2 and not tenth.seconds
