"""Schemathesis against the service's own OpenAPI schema, in process, with a valid dev token.

Every operation of ``/openapi.json`` gets a bounded number of generated requests, valid ones
(positive) and invalid ones (negative), sent over ASGI to the real app on a fresh database with
the two-tenant world. Each response must not be a 5xx and must match what the schema declares:
its status code, content type and body schema. The total number of cases is printed so CI logs
show how much was exercised.

The caller is the world's expert of clinic A, promoted to org admin, so one token reaches the
expert endpoints (events, schedule, profile, records) and the admin-only audit endpoints alike.
The Stripe webhook stays in: with a secret configured, unsigned requests must be a declared 400.
"""

from __future__ import annotations

import os
from pathlib import Path

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from carelog.db.engine import Database
from carelog.platform.auth.tokens import DevTokenSigner
from carelog.platform.records import RecordKeyring
from carelog.runtime import Runtime
from carelog.web.app import create_app
from world import build_world

pytestmark = pytest.mark.slow

#: Examples per operation and generation mode: ~20 operations x 2 modes x this, well under 2 min.
EXAMPLES = int(os.environ.get("CARELOG_SCHEMATHESIS_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def test_openapi_schema_holds_under_fuzzing(
    fresh_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = build_world(fresh_db.sync_engine("admin"))
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(sa.text("delete from records"))  # placeholders, not real ciphertext
        conn.execute(
            sa.text(
                "update user_org_memberships set role = 'admin'"
                " where workos_user_id = :u and org_id = :o"
            ),
            {"u": world.a.expert, "o": world.a.org_id},
        )
    signer = DevTokenSigner(os.urandom(32))
    runtime = Runtime(
        # Configured, so the webhook's answer to unsigned requests is its documented 400.
        fresh_db.settings.with_changes(stripe_webhook_secret="whsec_schemathesis"),
        fresh_db,
        spool_dir=tmp_path / "spool",
        token_verifier=signer,
        record_keyring=RecordKeyring.generate("fuzz-k1"),
    )
    app = create_app(runtime)
    token = signer.issue(world.a.expert, str(world.a.org_id), role="admin", ttl=3600)
    headers = {"Authorization": f"Bearer {token}"}

    cases = 0
    failures: list[str] = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "the schema declares no operation"
        for operation in operations:
            for mode in MODES:

                @hypothesis.settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def run(case: schemathesis.Case) -> None:
                    nonlocal cases
                    cases += 1
                    case.call_and_validate(headers=headers, checks=CHECKS)

                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    # Negative mode on an operation without inputs: nothing can be made invalid.
                    assert mode is schemathesis.GenerationMode.NEGATIVE
                # Report every operation's failure, not only the first. An exception from the app
                # itself (a 500 over ASGI) propagates as is; Hypothesis notes the failing case.
                except (Exception, BaseExceptionGroup) as exc:
                    notes = "\n".join(getattr(exc, "__notes__", ()))
                    failures.append(f"{operation.label} [{mode.value}]: {exc!r}\n{exc}\n{notes}")
    finally:
        shutdown_lifespans()

    with capsys.disabled():
        print(
            f"\nschemathesis: {cases} cases across {len(operations)} operations "
            f"({EXAMPLES} examples per operation and mode), {len(failures)} failing operations"
        )
    assert not failures, "\n\n".join(failures)
