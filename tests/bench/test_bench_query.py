"""``carelog bench query`` compares like with like and never measures an empty page."""

from __future__ import annotations

import pytest

from carelog.bench.query import run_query_bench
from dbtools import TestServer


@pytest.mark.slow
@pytest.mark.parametrize("events", [1000, 30_000])
def test_every_filter_returns_rows_at_every_size_against_raw_sql(
    pg: TestServer, events: int
) -> None:
    url = pg.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    report = run_query_bench(events=events, iterations=10, database_url=url, echo=lambda _: None)
    names = {r.name for r in report.results}
    assert len(names) == 6 and {r.page for r in report.results} == {"first", "deeper"}
    for r in report.results:
        assert r.min_rows > 0, f"{r.name} ({r.page}) returned an empty page at {events} events"
        # every way of reading was timed in every iteration (interleaved, same pages)
        for timings in (r.carelog, r.carelog_unit, r.raw, r.raw_unit, r.superuser):
            assert len(timings.values) == 10
        # the unit of work is part of what is judged, and it contains the statement
        assert r.carelog_unit.p(0.5) >= r.carelog.p(0.5)
