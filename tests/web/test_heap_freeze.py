"""The served app (``carelog up``, its workers) freezes its startup heap; tests' apps do not.

A full garbage collection walks every tracked object: with the service's ~160,000 start-up
objects that took 120-160 ms here, in the middle of running requests. Frozen objects are
skipped, so the collector only walks what requests allocate.
"""

from __future__ import annotations

import gc
from pathlib import Path

from carelog.db.engine import Database
from carelog.runtime import Runtime
from carelog.web.app import create_app


async def test_the_served_app_freezes_what_startup_left_alive(
    fresh_db: Database, tmp_path: Path
) -> None:
    gc.unfreeze()
    runtime = Runtime(fresh_db.settings, fresh_db, spool_dir=tmp_path / "spool")
    app = create_app(runtime, freeze_heap=True)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        await fresh_db.dispose()


async def test_an_app_built_for_tests_leaves_the_collector_alone(
    fresh_db: Database, tmp_path: Path
) -> None:
    gc.unfreeze()
    runtime = Runtime(fresh_db.settings, fresh_db, spool_dir=tmp_path / "spool")
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() == 0
    finally:
        await fresh_db.dispose()
