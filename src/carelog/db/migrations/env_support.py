"""Autogenerate settings shared by env.py and `carelog db check`, so both see the same drift."""

from __future__ import annotations

from typing import Any

from carelog.core.settings import Roles


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Audit partitions are created by SQL at run time; they are not part of the model."""
    if type_ == "table" and name is not None and name.startswith("audit_logs_"):
        return False
    if type_ == "schema":
        return name in (None, "public")
    return True


def compare_options() -> dict[str, Any]:
    return {"include_name": include_name, "compare_type": True, "compare_server_default": False}


def migration_roles() -> Roles:
    """The role names `carelog.db.migrate` handed to this migration run."""
    from alembic import op

    config = op.get_context().config
    if config is None or "roles" not in config.attributes:
        raise RuntimeError("carelog migrations run through carelog.db.migrate (carelog db upgrade)")
    roles: Roles = config.attributes["roles"]
    return roles
