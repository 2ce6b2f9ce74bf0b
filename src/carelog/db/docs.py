"""``docs/schema.md``, generated from the models and the SQL files (no database needed).

Tables, columns, keys and tenant scope come from :mod:`carelog.db.schema` (``table.info``);
row-level security comes from parsing the versioned SQL files in ``carelog/db/sql``: plain
``CREATE POLICY`` statements and the ``DO`` blocks that create the same policies for a list of
tables (``FOREACH t IN ARRAY ARRAY[...]`` with ``format($f$CREATE POLICY %I ON %I ...$f$,
t || '_suffix', t)``). ``tests/db/test_schema_doc.py`` fails when the committed page is stale;
``carelog db docs`` rewrites it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from carelog.db.schema import Base

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
DOC_PATH = Path("docs") / "schema.md"
ROLE_NAMES = {"{{app}}": "app", "{{system}}": "system", "{{writer}}": "audit_writer"}
ROLE_NAMES["{{owner}}"] = "owner"
ROLE_NAMES["{{maintenance}}"] = "maintenance"


@dataclass(frozen=True)
class Policy:
    name: str
    table: str
    command: str
    roles: str
    using: str | None
    check: str | None
    file: str


# --------------------------------------------------------------------------- SQL parsing

_COMMENT = re.compile(r"--[^\n]*")
_DO_BLOCK = re.compile(r"\bDO \$\$(.*?)END \$\$;", re.S)
_FOREACH = re.compile(r"FOREACH t IN ARRAY ARRAY\[(.*?)\]", re.S)
_LOOP_POLICY = re.compile(
    r"format\(\$f\$CREATE POLICY %I ON %I (.*?)\$f\$,\s*t \|\| '(\w+)',\s*t\)", re.S
)
_LOOP_FORCE = re.compile(r"ALTER TABLE %I FORCE ROW LEVEL SECURITY")
_POLICY = re.compile(r"CREATE POLICY (\w+) ON (\w+) (.*?);", re.S)
_DROP_POLICY = re.compile(r"DROP POLICY (?:IF EXISTS )?(\w+) ON (\w+)\s*;")
_FORCE = re.compile(r"ALTER TABLE (\w+) FORCE ROW LEVEL SECURITY")
_HEAD = re.compile(
    r"(?:AS (PERMISSIVE|RESTRICTIVE)\s+)?FOR (\w+) TO (.*?)(?=\s+USING\b|\s+WITH CHECK\b|$)", re.S
)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _balanced(text: str, keyword: str) -> str | None:
    """The parenthesised expression after ``keyword`` (``USING`` / ``WITH CHECK``)."""
    match = re.search(rf"\b{keyword}\s*\(", text)
    if match is None:
        return None
    depth, start = 0, match.end() - 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return _squash(text[start + 1 : i])
    return _squash(text[start + 1 :])


def _roles(text: str) -> str:
    names = [ROLE_NAMES.get(r.strip(), r.strip()) for r in _squash(text).split(",")]
    return ", ".join(f"`{n}`" for n in names)


def _policy(name: str, table: str, body: str, file: str) -> Policy:
    head = _HEAD.match(_squash(body))
    if head is None:
        raise ValueError(f"{file}: cannot parse policy {name} on {table}")
    restrictive = " (restrictive: must also hold)" if head.group(1) == "RESTRICTIVE" else ""
    return Policy(
        name,
        table,
        head.group(2) + restrictive,
        _roles(head.group(3)),
        _balanced(body, "USING"),
        _balanced(body, r"WITH CHECK"),
        file,
    )


def sql_files() -> list[tuple[str, str]]:
    folder = resources.files("carelog.db").joinpath("sql")
    # A migration's downgrade file (``*_down.sql``) restores an older state: not what is applied.
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.name.endswith(".sql") and not p.name.endswith("_down.sql")
    )
    return [(n, folder.joinpath(n).read_text(encoding="utf-8")) for n in names]


def parse_rls(files: list[tuple[str, str]] | None = None) -> tuple[list[Policy], set[str]]:
    """Every policy of the SQL files, and the tables whose RLS is FORCEd."""
    policies: list[Policy] = []
    forced: set[str] = set()
    for file, raw in files if files is not None else sql_files():
        text = _COMMENT.sub("", raw)
        for block in _DO_BLOCK.finditer(text):
            body = block.group(1)
            tables_match = _FOREACH.search(body)
            if tables_match is None:
                continue
            tables = re.findall(r"'(\w+)'", tables_match.group(1))
            for table in tables:
                if _LOOP_FORCE.search(body):
                    forced.add(table)
                for policy in _LOOP_POLICY.finditer(body):
                    policies.append(_policy(table + policy.group(2), table, policy.group(1), file))
        rest = _DO_BLOCK.sub("", text)
        forced.update(_FORCE.findall(rest))
        dropped = set(_DROP_POLICY.findall(rest))  # replaced by a later file's definition
        policies = [p for p in policies if (p.name, p.table) not in dropped]
        for name, table, body in _POLICY.findall(rest):
            policies.append(_policy(name, table, body, file))
    return policies, forced


# --------------------------------------------------------------------------- rendering


def _type(column: sa.Column[object]) -> str:
    return str(column.type.compile(dialect=DIALECT))


def _default(column: sa.Column[object]) -> str:
    default = column.server_default
    if default is None:
        return ""
    arg = getattr(default, "arg", None)
    if arg is None:
        return "generated"
    if isinstance(arg, str):
        return f"`{arg}`"
    return f"`{_squash(str(arg.compile(dialect=DIALECT)))}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(table: sa.Table, policies: list[Policy], forced: set[str]) -> list[str]:
    scope = table.info.get("scope", "?")
    lines = [f"### `{table.name}`", ""]
    summary = table.info.get("summary")
    if summary:
        lines += [str(summary), ""]
    scope_text = (
        "tenant (`org_id NOT NULL`, rows belong to one organization)"
        if scope == "org"
        else "global (shared by all tenants)"
    )
    lines.append(f"- **Scope**: {scope_text}")
    partition = table.dialect_options["postgresql"].get("partition_by")
    if partition:
        lines.append(f"- **Partitioned** by `{partition}`")
    pk = ", ".join(c.name for c in table.primary_key.columns)
    lines.append(f"- **Primary key**: ({pk})")
    uniques = sorted(
        "(" + ", ".join(c.name for c in con.columns) + ")"
        for con in table.constraints
        if isinstance(con, sa.UniqueConstraint)
    )
    uniques += sorted(
        "("
        + ", ".join(c.name for c in ix.columns)
        + ")"
        + (" partial" if ix.dialect_options["postgresql"].get("where") is not None else "")
        for ix in table.indexes
        if ix.unique
    )
    if uniques:
        lines.append(f"- **Unique**: {'; '.join(uniques)}")
    fks = sorted(
        "("
        + ", ".join(e.parent.name for e in fk.elements)
        + f") → {fk.referred_table.name}"
        + "("
        + ", ".join(e.column.name for e in fk.elements)
        + ")"
        + (f" ON DELETE {fk.ondelete}" if fk.ondelete else "")
        for fk in table.foreign_key_constraints
    )
    if fks:
        lines.append(f"- **Foreign keys**: {'; '.join(fks)}")
    lines += ["", "| Column | Type | Null | Default | Notes |", "|---|---|---|---|---|"]
    for column in table.columns:
        notes = _cell(_squash(column.comment or ""))
        lines.append(
            f"| `{column.name}` | {_cell(_type(column))} | {'yes' if column.nullable else 'no'} "
            f"| {_cell(_default(column))} | {notes} |"
        )
    lines.append("")
    mine = [p for p in policies if p.table == table.name]
    rls = "forced" if table.name in forced else "**not forced**"
    lines.append(f"Row-level security: {rls}; {len(mine)} polic{'y' if len(mine) == 1 else 'ies'}.")
    if mine:
        lines += ["", "| Policy | Command | Roles | USING | WITH CHECK |", "|---|---|---|---|---|"]
        for p in mine:
            using = f"`{_cell(p.using)}`" if p.using else ""
            check = f"`{_cell(p.check)}`" if p.check else ""
            lines.append(f"| `{p.name}` | {p.command} | {p.roles} | {using} | {check} |")
    lines.append("")
    return lines


HEADER = """\
# Schema

<!-- GENERATED by `carelog db docs` from carelog.db.schema and carelog/db/sql/*.sql.
     Do not edit by hand: tests/db/test_schema_doc.py fails when this page is stale. -->

Every table of the canonical schema: columns (PostgreSQL type, nullability, server default),
keys, tenant scope (`table.info["scope"]`) and the row-level security policies that the
versioned SQL files create for it. Role names are shown without the configurable prefix
(`app` is `<prefix>_app`, and so on; see [architecture.md](architecture.md#database-roles)).
Privileges (which columns each role may write) are in `carelog/db/sql/0001_grants.sql` and the
later SQL files; a policy only matters for a command the role is granted.

- **Tenant tables** carry `org_id NOT NULL`; the policies key on `app.current_org_id()`.
- **Global tables** are shared; each one's policies say who may read or write it.
- `audit_logs` partitions (`audit_logs_default`, `audit_logs_pYYYYMM`) are created by
  `app.ensure_audit_partitions`, not by the models: each has RLS forced with no policy and no
  privilege for the runtime roles, so only the parent table can be read.
"""

LEGACY = """\
## The legacy schema (read-only input)

`carelog.legacy.schema` reproduces the Clerk-era design the platform is migrating away
from, on its own metadata objects so it can never be mixed into this schema:

- `LegacyBase`: the 12 tables of the old main database (`events`, `schedules`,
  `scheduleAvailabilities`, `meetings`, `categories`, `profiles`, `users`, `records`,
  `payment_transfers`, `scheduling_settings`, `blocked_dates`, `slot_reservations`), keyed by
  Clerk user ids (`clerkUserId`), with no `org_id` and no row-level security.
- `LegacyAuditBase`: `audit_logs` of the old *separate* audit database
  (`AUDITLOG_DATABASE_URL`): serial `id`, `clerkUserId`, `action`/`resource_type`
  (varchar 50), `resource_id` (varchar 255), `old_values`/`new_values` (jsonb), `ip_address`
  (varchar 45), `user_agent`, nullable naive `created_at`.

carelog never writes these tables. Only `carelog.legacy` may import the module (an
import-linter contract); `carelog legacy import-audit` reads the legacy audit table (and the
legacy `users` table, for e-mails) and writes the unified `audit_logs`, recording each run in
`legacy_import_runs` and every row it could not map in `legacy_audit_quarantine`
([migrating.md](migrating.md)). The tests recreate the legacy schema from these models in a
second database to import from it (`tests/legacy/test_audit_import.py`).
"""


def render_schema_doc() -> str:
    policies, forced = parse_rls()
    tables = sorted(Base.metadata.tables.values(), key=lambda t: t.name)
    known = {t.name for t in tables}
    lines = [HEADER]
    for scope, title in (("org", "Tenant tables"), ("global", "Global tables")):
        chosen = [t for t in tables if t.info.get("scope") == scope]
        lines += [f"## {title} ({len(chosen)})", ""]
        lines += [f"- [`{t.name}`](#{t.name})" for t in chosen]
        lines.append("")
        for table in chosen:
            lines += _table(table, policies, forced)
    unscoped = [t.name for t in tables if t.info.get("scope") not in ("org", "global")]
    if unscoped:
        lines += ["## Tables without a declared scope", ""]
        lines += [f"- `{n}`" for n in unscoped] + [""]
    orphans = sorted({p.table for p in policies} - known)
    if orphans:
        lines += ["## Policies on tables outside the models", ""]
        lines += [f"- `{n}`" for n in orphans] + [""]
    lines.append(LEGACY)
    return "\n".join(lines).rstrip("\n") + "\n"
