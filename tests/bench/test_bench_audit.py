"""``carelog bench audit`` must not flatter: same-concurrency reference, realistic events,
committed-only throughput, CPU per event, COPY on as many connections as the writer's lanes.

No timing is asserted (the machine is shared); what is asserted is *what* gets measured.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from carelog.audit.context import audit_context
from carelog.audit.events import MASK_PREFIX, Masker, build_event
from carelog.audit.writer import LANES
from carelog.bench.audit import PRODUCER_LEVELS, run_audit_bench
from carelog.bench.cpu import ServerCpu, measure_cpu
from carelog.bench.mix import MIX, call_args
from carelog.platform.audit_catalog import build_catalog
from dbtools import TestServer


def test_the_mix_exercises_minimising_masking_and_nested_metadata() -> None:
    catalog = build_catalog()
    masker = Masker(b"k" * 32, catalog.sensitive_fields)
    minimised = masked = nested = writes_with_changes = 0
    with audit_context(actor_id="user_x", org_id=uuid.uuid4()) as ctx:
        for i in range(len(MIX) * 3):
            action, rtype, rid, changes, metadata, subject = call_args(i)
            event, spec = build_event(
                catalog, masker, ctx, action, rtype, rid, changes, metadata, data_subject=subject
            )
            if not spec.is_read and changes is not None:
                writes_with_changes += 1
                given = {**changes.get("old_values", {}), **changes.get("new_values", {})}
                kept = {**(event.old_values or {}), **(event.new_values or {})}
                minimised += len(kept) < len(given)
            stored = repr((event.old_values, event.new_values, event.metadata))
            masked += MASK_PREFIX in stored
            nested += any(isinstance(v, (dict, list)) for v in (event.metadata or {}).values())
    assert writes_with_changes >= len(MIX) // 2
    assert minimised and masked and nested


def test_server_cpu_counts_a_local_servers_work(pg: TestServer) -> None:
    conninfo = pg.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    server = ServerCpu(conninfo)
    assert server.seconds() is not None
    with measure_cpu(server) as cpu, psycopg.connect(conninfo) as conn:
        conn.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
    assert cpu.server is not None and cpu.server > 0.05
    assert cpu.python >= 0


@pytest.mark.slow
def test_bench_audit_measures_like_for_like(pg: TestServer) -> None:
    url = pg.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    report = run_audit_bench(
        events=1500, reference_events=300, single_events=100, database_url=url, echo=lambda _: None
    )
    # the reference runs at every concurrency the writer is measured at
    assert [r.producers for r in report.references] == list(PRODUCER_LEVELS)
    top = next(r for r in report.carelog if r.name.endswith("log_audit_event, 256 producers"))
    assert report.reference_for(top.producers).producers == 256
    # COPY gets as many connections as the writer has lanes
    assert report.copy.producers == LANES
    for result in (*report.references, report.copy, *report.carelog):
        assert result.cpu is not None and result.cpu.python > 0
        assert result.cpu.server is not None  # a local server: its CPU is read from /proc
    # only committed events count, and the counts add up with the writer's own
    assert all(r.spooled == 0 for r in report.carelog)
    assert sum(r.events for r in report.carelog) <= report.writer_stats["committed"]
