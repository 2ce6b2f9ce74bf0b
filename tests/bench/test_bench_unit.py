"""``carelog bench unit`` runs the same unit of work through each layer, as the app role."""

from __future__ import annotations

import pytest

from carelog.bench.unit import LAYERS, run_unit_bench
from dbtools import TestServer


@pytest.mark.slow
def test_bench_unit_measures_every_layer_each_round(pg: TestServer) -> None:
    url = pg.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    report = run_unit_bench(units=100, rounds=2, database_url=url, echo=lambda _: None)
    assert len(report.runs) == 2 * LAYERS
    assert all(run.units == 100 and run.cpu_us > 0 and run.wall_us > 0 for run in report.runs)
    floors = report.runs[0], report.runs[LAYERS]
    assert [report.ratio(f) for f in floors] == [1.0, 1.0]  # each round against its own floor
    assert [r.label[:3] for r in report.runs[:LAYERS]] == ["(a)", "(b)", "(c)"]
