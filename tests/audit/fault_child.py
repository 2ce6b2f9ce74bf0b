"""Child process of the kill -9 fault test: log events as fast as possible, print each ack.

Usage: python fault_child.py ADMIN_URL ROLE_PREFIX SPOOL_DIR DATA_DIR ORG_ID ACTOR

Every line on stdout is the id of an event whose ``log_audit_event`` call has returned, i.e.
an event the writer acknowledged as durable (committed or fsync'd to the spool). The parent
kills this process with SIGKILL at some point and checks that every printed id is stored once.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

from carelog.audit import audit_context, configure_audit, log_audit_event  # noqa: E402
from carelog.audit.setup import create_audit_service  # noqa: E402
from carelog.core.settings import Settings  # noqa: E402
from carelog.db.engine import Database  # noqa: E402
from carelog.platform.audit_catalog import build_catalog  # noqa: E402

PRODUCERS = 32


async def main(admin_url: str, prefix: str, spool: str, data: str, org: str, actor: str) -> None:
    settings = Settings.from_env(
        {
            "CARELOG_DATABASE_URL": admin_url,
            "CARELOG_ROLE_PREFIX": prefix,
            "CARELOG_ENV": "test",
            "CARELOG_DATA_DIR": data,
        }
    )
    database = Database.open(settings)
    service = create_audit_service(database, build_catalog(), spool_dir=Path(spool))
    configure_audit(service)
    await service.start()
    out = sys.stdout

    async def producer(p: int) -> None:
        with audit_context(actor_id=actor, org_id=org, ip_address="10.9.9.9"):
            i = 0
            while True:
                event = await log_audit_event("PROFILE_VIEWED", "profile", f"kill-{p}-{i}")
                out.write(f"{event.id}\n")
                out.flush()
                i += 1

    out.write("ready\n")
    out.flush()
    await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
