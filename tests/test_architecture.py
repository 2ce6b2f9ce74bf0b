"""The architecture contracts stay true: import-linter passes and covers every db module."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import carelog.db
import carelog.db.schema

ROOT = Path(__file__).parents[1]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]  # type: ignore[no-any-return]


def test_legacy_schema_lives_in_carelog_legacy() -> None:
    """The Clerk-era schema is part of carelog.legacy, so one contract keeps it out of the app:
    nothing in ``carelog.db`` is legacy, and the legacy contract covers every other layer."""
    modules = {m.name for m in pkgutil.iter_modules(carelog.db.__path__)}
    assert not {m for m in modules if "legacy" in m or "clerk" in m}
    import carelog.legacy.schema as legacy_schema

    assert legacy_schema.LegacyBase.metadata is not carelog.db.schema.Base.metadata
    contract = next(c for c in _contracts() if "carelog.legacy" in str(c["name"]))
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    sources = set(contract["source_modules"])  # type: ignore[call-overload]
    assert sources == set(layers) - {"carelog.cli"}  # type: ignore[arg-type]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/pytest"
    assert f"\n{command}\n" in readme
    assert f"\n{command}\n" in ci


def test_every_environment_variable_is_documented() -> None:
    from carelog.core.settings import ENVIRONMENT_VARIABLES

    readme = (ROOT / "README.md").read_text()
    missing = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in readme]
    assert missing == []


#: What builds or runs SQL. In a domain package only its ``queries`` module may hold any.
_SQL_MARKERS = (
    "sa.text(",
    "sa.select(",
    "sa.insert(",
    "sa.update(",
    "sa.delete(",
    "import sqlalchemy as sa",
)


def test_domain_packages_keep_their_sql_in_their_queries_module() -> None:
    """Every package under carelog.platform has one shape: endpoints (HTTP), service (rules)
    and a queries module holding the package's SQL, so a reviewer finds every statement of a
    domain in one file (docs/architecture.md, "Domain packages")."""
    platform = ROOT / "src" / "carelog" / "platform"
    offenders = [
        f"{module.relative_to(platform)}: {marker}"
        for package in sorted(p for p in platform.iterdir() if (p / "__init__.py").exists())
        for module in sorted(package.glob("*.py"))
        if module.name != "queries.py"
        for marker in _SQL_MARKERS
        if marker in module.read_text()
    ]
    assert offenders == []
    services = sorted(platform.glob("*/service.py"))
    assert len(services) >= 8 and all((s.parent / "queries.py").exists() for s in services), [
        str(s.parent.name) for s in services if not (s.parent / "queries.py").exists()
    ]
