"""Versioned SQL files (functions, policies, grants) rendered with the configured role names.

Policies and grants live in plain SQL next to the migrations so a reviewer reads exactly what
PostgreSQL enforces. Role names are the only variable part: tests give each run its own roles
on a shared server, so the files use ``{{owner}}``, ``{{app}}``, ``{{system}}`` and
``{{writer}}``, ``{{maintenance}}`` placeholders.
"""

from __future__ import annotations

from importlib import resources

from carelog.core.settings import Roles


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render_sql(filename: str, roles: Roles) -> str:
    text = resources.files("carelog.db").joinpath("sql", filename).read_text(encoding="utf-8")
    names = {
        "owner": roles.owner,
        "app": roles.app,
        "system": roles.system,
        "writer": roles.writer,
        "maintenance": roles.maintenance,
    }
    for key, value in names.items():
        text = text.replace("{{" + key + "}}", quote_ident(value))
        text = text.replace("{{" + key + "_literal}}", "'" + value.replace("'", "''") + "'")
    return text
