"""Configuration errors are caught at start-up with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from carelog.core.errors import ConfigurationError
from carelog.core.settings import ENVIRONMENT_VARIABLES, Settings


def test_defaults_use_the_embedded_database(tmp_path: Path) -> None:
    s = Settings.from_env({"XDG_DATA_HOME": str(tmp_path)})
    assert s.embedded
    assert s.data_dir == tmp_path / "carelog"
    assert s.roles.app == "carelog_app"
    assert s.port == 8000


def test_old_audit_database_variable_stops_startup() -> None:
    with pytest.raises(ConfigurationError, match="audit logs now live in the main database"):
        Settings.from_env({"AUDITLOG_DATABASE_URL": "postgresql://x/y"})


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"CARELOG_ROLE_PREFIX": "Bad-Prefix"}, "CARELOG_ROLE_PREFIX"),
        ({"CARELOG_PORT": "99999"}, "CARELOG_PORT"),
        ({"CARELOG_ENV": "staging"}, "CARELOG_ENV"),
        ({"CARELOG_ENV": "production"}, "CARELOG_DATABASE_URL"),
        ({"CARELOG_DB_NAME": "x;drop"}, "CARELOG_DB_NAME"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env)
    assert info.value.field == field


def test_every_variable_read_is_documented() -> None:
    source = (Path(__file__).parents[2] / "src/carelog/core/settings.py").read_text()
    import re

    read = set(re.findall(r'env(?:\.get)?\[?\(?"([A-Z_]+)"', source))
    assert read - {"XDG_DATA_HOME"} <= set(ENVIRONMENT_VARIABLES)
