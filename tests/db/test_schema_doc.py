"""docs/schema.md is generated from the models and SQL files, and must be current (CI fails)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from carelog.cli.docs_commands import app
from carelog.db.docs import parse_rls, render_schema_doc
from carelog.db.schema import GLOBAL_TABLES, TENANT_TABLES, Base

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "schema.md"


def test_schema_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render_schema_doc(), (
        "docs/schema.md is stale: run `carelog db docs` and commit the result"
    )


def test_every_table_is_documented_with_its_scope() -> None:
    text = render_schema_doc()
    for name in Base.metadata.tables:
        assert f"### `{name}`" in text
    assert set(TENANT_TABLES) | set(GLOBAL_TABLES) == set(Base.metadata.tables)


def test_rls_parser_sees_every_table_forced_and_known_policies() -> None:
    policies, forced = parse_rls()
    assert set(Base.metadata.tables) <= forced
    by_name = {p.name: p for p in policies}
    assert len(by_name) == len(policies)  # names are unique, as PostgreSQL requires per table
    looped = by_name["events_system_all"]  # created by a DO block for a list of tables
    assert (looped.command, looped.roles) == ("ALL", "`system`")
    assert looped.using == looped.check == "org_id = app.current_org_id()"
    writer = by_name["audit_logs_writer_insert"]
    assert writer.roles == "`audit_writer`" and writer.using is None
    for table in TENANT_TABLES:
        assert any(p.table == table and "system" in p.roles for p in policies), table


def test_check_command(tmp_path: Path) -> None:
    target = tmp_path / "schema.md"
    runner = CliRunner()
    assert runner.invoke(app, ["--check", "--output", str(target)]).exit_code == 1
    assert runner.invoke(app, ["--output", str(target)]).exit_code == 0
    assert target.read_text(encoding="utf-8") == render_schema_doc()
    assert runner.invoke(app, ["--check", "--output", str(target)]).exit_code == 0
