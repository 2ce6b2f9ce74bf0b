"""The CLI as a person meets it: real processes, real exit codes, one line per error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carelog import __version__
from carelog.db import migrate
from carelog.db.engine import Database

HEAD = migrate.head_revisions()[0]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CARELOG_", "AUDITLOG_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "carelog.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"carelog {__version__}"


def test_retired_audit_database_variable_is_one_clear_line() -> None:
    result = run_cli("db", "current", env={"AUDITLOG_DATABASE_URL": "postgresql://old/audit"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "audit logs now live in the main database" in lines[0]
    assert "remove the variable" in lines[0]


def test_unreachable_server_is_one_clear_line() -> None:
    result = run_cli(
        "db", "current", env={"CARELOG_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "cannot connect to PostgreSQL" in result.stderr


def test_not_a_url_is_a_clear_error() -> None:
    result = run_cli("db", "current", env={"CARELOG_DATABASE_URL": "definitely not a url"})
    assert result.returncode == 2
    assert "CARELOG_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def _db_env(db: Database) -> dict[str, str]:
    return {
        "CARELOG_DATABASE_URL": db.admin_url.render_as_string(hide_password=False),
        "CARELOG_ROLE_PREFIX": db.settings.roles.owner.removesuffix("_owner"),
        "CARELOG_ENV": "test",
    }


def test_db_commands_on_a_migrated_database(fresh_db: Database) -> None:
    env = _db_env(fresh_db)
    current = run_cli("db", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert HEAD in current.stdout
    check = run_cli("db", "check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no drift" in check.stdout
    down = run_cli("db", "downgrade", "base", env=env)
    assert down.returncode == 0, down.stderr
    behind = run_cli("db", "check", env=env)
    assert behind.returncode == 1
    up = run_cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert HEAD in up.stdout


def test_embedded_database_is_created_and_reused(tmp_path: Path) -> None:
    env = {"CARELOG_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
    again = run_cli("db", "current", env=env)
    assert again.returncode == 0, again.stderr
    assert HEAD in again.stdout


@pytest.mark.parametrize("args", [["db", "downgrade"], ["nonsense"]])
def test_usage_errors_do_not_trace(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
