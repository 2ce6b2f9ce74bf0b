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


def test_readme_configuration_table_is_generated_from_the_settings() -> None:
    """The README's table is exactly what ``carelog docs config`` writes: it cannot drift."""
    from carelog.core.settings_doc import with_configuration_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert with_configuration_table(readme) == readme


def test_every_field_is_an_environment_variable_with_a_description() -> None:
    for name, info in Settings.model_fields.items():
        assert isinstance(info.validation_alias, str), name
        assert info.description, name


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"CARELOG_PORT": "eighty"}, "CARELOG_PORT"),
        ({"CARELOG_AUDIT_SEAL_INTERVAL": "0"}, "CARELOG_AUDIT_SEAL_INTERVAL"),
        ({"CARELOG_AUDIT_SEAL_INTERVAL": "soon"}, "CARELOG_AUDIT_SEAL_INTERVAL"),
        ({"CARELOG_AUTH_MODE": "ldap"}, "CARELOG_AUTH_MODE"),
        ({"CARELOG_DEBUG": "maybe"}, "CARELOG_DEBUG"),
    ],
)
def test_type_errors_name_the_variable_and_the_fix(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env)
    assert info.value.field == field
    assert info.value.hint


def test_an_explicit_mapping_replaces_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELOG_PORT", "8101")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    assert Settings.from_env().port == 8101
    given = Settings.from_env({})
    assert given.port == 8000
    assert given.stripe_secret_key is None
    # secrets never show in a repr or a log line
    assert "sk_test_x" not in repr(Settings.from_env())


def test_no_environment_read_outside_core() -> None:
    """Every variable is read by carelog.core.settings; nothing else touches os.environ."""
    import re

    src = Path(__file__).parents[2] / "src" / "carelog"
    offenders = [
        f"{path.relative_to(src)}:{n}"
        for path in src.rglob("*.py")
        if "core" not in path.relative_to(src).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"os\.environ|os\.getenv", line)
    ]
    assert offenders == []
