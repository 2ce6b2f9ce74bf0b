"""`carelog` starts without importing what the command does not use.

Every command group used to be imported up front, so `carelog --version` paid for FastAPI,
uvicorn, SQLAlchemy, libcst and the audit core (seconds on a busy machine). The check is on
what a fresh interpreter has imported, not on a time, and every command is still reachable.
"""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from carelog.cli.main import COMMANDS, app

HEAVY = ("fastapi", "uvicorn", "sqlalchemy", "libcst", "psycopg", "carelog.audit", "carelog.web")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.split())


def test_version_imports_none_of_the_heavy_packages() -> None:
    loaded = _imported_after(
        "import sys\nfrom carelog.cli.main import main\nsys.argv = ['carelog', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_a_group_imports_only_its_own_modules() -> None:
    loaded = _imported_after(
        "import sys\nfrom carelog.cli.main import main\nsys.argv = ['carelog', 'dev', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert "carelog.cli.dev_commands" in loaded
    assert not {"libcst", "uvicorn", "carelog.cli.up_command", "carelog.cli.codemod"} & loaded


def test_every_command_is_listed_and_answers_help() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert top.exit_code == 0, top.output
    for name in COMMANDS:
        assert f" {name} " in top.output, name
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        assert f"Usage: carelog {name}" in result.output, (name, result.output)
