"""`carelog subject …` against a real database: erase (and its refusal), accounting, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from carelog.cli.main import app
from carelog.db.engine import Database
from world import World, build_world

SUBJECT = "subj_cli_0001"


@pytest.fixture
def world(fresh_db: Database) -> World:
    w = build_world(fresh_db.sync_engine("admin"))
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "insert into data_subjects (org_id, subject_id, kind, email_token)"
                " values (:o, :s, 'carelog', 'tok')"
            ),
            {"o": w.a.org_id, "s": SUBJECT},
        )
        conn.execute(
            sa.text(
                "insert into meetings (org_id, event_id, workos_user_id, data_subject_id,"
                " guest_email, guest_name, guest_notes, start_time, end_time, timezone)"
                " values (:o, :e, :x, :s, 'cli.person@example.test', 'Cli Person',"
                " 'CLI-NOTES', now() + interval '3 days', now() + interval '3 days 1 hour',"
                " 'UTC')"
            ),
            {"o": w.a.org_id, "e": w.a.ids["public_event"], "x": w.a.expert, "s": SUBJECT},
        )
    return w


@pytest.fixture
def invoke(fresh_db: Database, tmp_path: Path) -> Any:
    env = {
        "CARELOG_DATABASE_URL": fresh_db.admin_url.render_as_string(hide_password=False),
        "CARELOG_ROLE_PREFIX": fresh_db.settings.roles.owner.removesuffix("_owner"),
        "CARELOG_ENV": "test",
        "CARELOG_DATA_DIR": str(tmp_path / "data"),
        "CARELOG_AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["subject", *args], env=env, catch_exceptions=True)

    return run


def test_erase_accounting_and_export_from_the_cli(
    world: World, invoke: Any, fresh_db: Database, tmp_path: Path
) -> None:
    org = str(world.a.org_id)
    export = invoke("export", "--org", org, "--subject", SUBJECT)
    assert export.exit_code == 0, export.output
    assert json.loads(export.output)["meetings"][0]["guest_name"] == "Cli Person"

    refused = invoke(
        "erase", "--org", org, "--subject", world.a.patient, "--reason", "Art. 17", "--yes"
    )
    assert refused.exit_code != 0
    assert "litigation" in str(refused.exception)  # the world's hold on its patient, named

    done = invoke(
        "erase", "--org", org, "--email", "CLI.Person@example.test", "--reason", "x", "--yes"
    )
    assert done.exit_code == 1  # no such e-mail token: the fixture's token is not a real hash
    assert "no data subject" in str(done.exception)
    done = invoke("erase", "--org", org, "--subject", SUBJECT, "--reason", "ticket 12", "--yes")
    assert done.exit_code == 0, done.output
    assert "completed" in done.output
    with fresh_db.sync_engine("admin").connect() as conn:
        guest = conn.execute(
            sa.text("select guest_name, guest_notes from meetings where data_subject_id = :s"),
            {"s": SUBJECT},
        ).one()
    assert tuple(guest) == ("[erased]", None)

    page = tmp_path / "accounting.html"
    shown = invoke(
        "accounting", "--org", org, "--subject", SUBJECT, "--format", "html", "-o", str(page)
    )
    assert shown.exit_code == 0, shown.output
    html = page.read_text()
    assert "Accounting of disclosures" in html and "<style>" in html and "erased" in html
    assert "Cli Person" not in html
    as_json = invoke("accounting", "--org", org, "--subject", SUBJECT)
    assert as_json.exit_code == 0, as_json.output
    actions = {e["action"] for e in json.loads(as_json.output)["access"]}
    assert {"SUBJECT_ERASED", "SUBJECT_DATA_EXPORTED"} <= actions
    assert invoke("resume", "--org", org).exit_code == 0


def test_backfill_names_subjects_of_meetings_booked_before_0009(
    world: World, invoke: Any, fresh_db: Database
) -> None:
    with fresh_db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text("update meetings set data_subject_id = null where org_id = :o"),
            {"o": world.a.org_id},
        )
    done = invoke("backfill", "--org", str(world.a.org_id))
    assert done.exit_code == 0, done.output
    with fresh_db.sync_engine("admin").connect() as conn:
        subjects = (
            conn.execute(
                sa.text("select data_subject_id from meetings where org_id = :o"),
                {"o": world.a.org_id},
            )
            .scalars()
            .all()
        )
    assert subjects and all(s and s.startswith("subj_") for s in subjects)
    assert invoke("backfill", "--org", str(world.a.org_id)).output.startswith("0 meeting")
