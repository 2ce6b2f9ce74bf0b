"""Who a legacy row belongs to, and what its action and resource type are called now.

**Identity rule** (Clerk user id → WorkOS user id and organization), first match wins:

1. ``--user-map`` CSV (``clerk_user_id,workos_user_id,org_id``): explicit, used as given.
2. The Clerk-era ``users`` table (in the source database, or ``--users-source``) gives the Clerk
   user's e-mail; the canonical ``users`` row with the same e-mail (trimmed, case-insensitive)
   gives the WorkOS user id. Two canonical users with that e-mail → not mapped (ambiguous).
   The organization is then the ``--org-map`` CSV entry (``workos_user_id,org_id``) for that
   user, else the user's *personal* organization: the one organization of type
   ``patient_personal`` or ``expert_individual`` where the user is an active owner. None, or
   more than one, → not mapped.

From the WorkOS cut-over on, the old wrapper wrote **WorkOS user ids** (``user_`` + a ULID)
into the same ``clerkUserId`` column: such an id is taken as it is when the target's ``users``
table has it (its organization: the ``--org-map`` entry, else its one active membership).
**Placeholder actors** (``unknown``, ``SYSTEM_UNKNOWN_EXPERT``), written when the old code did
not know who acted, become the system actor ``system:legacy-unknown-actor``; their organization
comes per row from the resource the row names (``carelog.legacy.audit_import.resources``), as
it does for every row whose resource the target knows.

A row whose organization does not exist in the target database is not mapped either. Rows that
are not mapped go to the quarantine with the reason; nothing is guessed.

**Vocabulary**: the platform catalog gives each legacy action its home
(``AuditCatalog.legacy_action``); an action already in the new vocabulary is kept. ``FAILED_*``
legacy actions become the same action with ``outcome='failure'`` (``..._UNAUTHORIZED``:
``'denied'``). Resource types map through the platform's ``LEGACY_RESOURCE_TYPES``; a type
already in the catalog is kept. The old names stay in the event's metadata.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from carelog.audit.catalog import ActionSpec, AuditCatalog, Outcome
from carelog.legacy.audit_import.errors import MappingFileError

USER_MAP_COLUMNS = ("clerk_user_id", "workos_user_id", "org_id")
ORG_MAP_COLUMNS = ("workos_user_id", "org_id")
PERSONAL_ORG_TYPES = ("patient_personal", "expert_individual")
#: A WorkOS user id: ``user_`` and a 26-character ULID (Clerk ids are ``user_2`` + base62).
WORKOS_USER_ID = re.compile(r"^user_[0-9A-HJKMNP-TV-Z]{26}$")
#: Actor ids the old code wrote when it did not know who acted.
PLACEHOLDER_ACTORS = frozenset({"unknown", "SYSTEM_UNKNOWN_EXPERT"})
PLACEHOLDER_ACTOR = "system:legacy-unknown-actor"


@dataclass(frozen=True)
class Identity:
    workos_user_id: str
    org_id: uuid.UUID | None  # None: only the row's resource can tell
    via: str  # "user-map" | "users-table" | "workos-id" | "placeholder"


class Unmapped(str):
    """The reason a Clerk user could not be mapped (a ``str`` so it reads as one)."""


# --------------------------------------------------------------------------- CSV files


def _read_csv(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise MappingFileError(f"{path}: cannot be read ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise MappingFileError(
                    f"{path}:1: the file is empty", hint=f"expected a header {','.join(columns)}"
                )
            names = [h.strip().lower() for h in header]
            if names != list(columns):
                raise MappingFileError(
                    f"{path}:1: header is {','.join(header)!r}, expected {','.join(columns)!r}"
                )
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise MappingFileError(
                        f"{path}:{line}: {len(row)} field(s), expected {len(columns)} "
                        f"({','.join(columns)})"
                    )
                values = dict(zip(columns, (cell.strip() for cell in row), strict=True))
                empty = [k for k, v in values.items() if not v]
                if empty:
                    raise MappingFileError(f"{path}:{line}: empty {', '.join(empty)}")
                yield line, values
        except csv.Error as exc:
            raise MappingFileError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise MappingFileError(f"{path}: not UTF-8 text") from None


def _org_id(path: Path, line: int, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise MappingFileError(
            f"{path}:{line}: org_id {value!r} is not a UUID",
            hint="use the carelog organization id (organizations.id), not the WorkOS org id",
        ) from None


def read_user_map(path: Path) -> dict[str, Identity]:
    """``clerk_user_id,workos_user_id,org_id`` rows; a Clerk id may appear once."""
    out: dict[str, Identity] = {}
    for line, row in _read_csv(path, USER_MAP_COLUMNS):
        identity = Identity(row["workos_user_id"], _org_id(path, line, row["org_id"]), "user-map")
        clerk = row["clerk_user_id"]
        if clerk in out and out[clerk] != identity:
            raise MappingFileError(f"{path}:{line}: {clerk} is mapped twice, differently")
        out[clerk] = identity
    return out


def read_org_map(path: Path) -> dict[str, uuid.UUID]:
    """``workos_user_id,org_id`` rows for users without a personal organization."""
    out: dict[str, uuid.UUID] = {}
    for line, row in _read_csv(path, ORG_MAP_COLUMNS):
        org = _org_id(path, line, row["org_id"])
        user = row["workos_user_id"]
        if user in out and out[user] != org:
            raise MappingFileError(f"{path}:{line}: {user} is mapped to two organizations")
        out[user] = org
    return out


# --------------------------------------------------------------------------- identities


@dataclass
class IdentityResolver:
    """Resolves Clerk ids with the rule above; look-ups in the target are cached per run."""

    user_map: Mapping[str, Identity] = field(default_factory=dict)
    org_map: Mapping[str, uuid.UUID] = field(default_factory=dict)
    legacy_emails: Mapping[str, str] | None = None  # Clerk id → e-mail (Clerk-era users)
    _by_email: dict[str, list[str]] = field(default_factory=dict)
    _personal: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    _orgs: set[uuid.UUID] = field(default_factory=set)
    _cache: dict[str, Identity | Unmapped] = field(default_factory=dict)
    _workos: dict[str, list[uuid.UUID]] = field(default_factory=dict)  # user → active orgs
    _looked_up: set[str] = field(default_factory=set)

    def prepare(self, conn: sa.Connection, actor_ids: Iterable[str]) -> None:
        """Look up the WorkOS-shaped ids of a batch in the target (once per id per run)."""
        wanted = sorted(
            {
                a
                for a in actor_ids
                if WORKOS_USER_ID.match(a) and a not in self.user_map and a not in self._looked_up
            }
        )
        if not wanted:
            return
        self._looked_up.update(wanted)
        rows = conn.execute(
            sa.text(
                "select u.workos_user_id, m.org_id from users u "
                "left join user_org_memberships m on m.workos_user_id = u.workos_user_id "
                "and m.status = 'active' where u.workos_user_id = any(:ids)"
            ),
            {"ids": wanted},
        )
        for user, org in rows:
            orgs = self._workos.setdefault(str(user), [])
            if org is not None:
                orgs.append(uuid.UUID(str(org)))
                self._orgs.add(uuid.UUID(str(org)))

    def load(self, conn: sa.Connection) -> None:
        """Read what the rule needs from the target (through the admin connection: people and
        organizations of every tenant, which no runtime role may list)."""
        emails = sorted({e.strip().lower() for e in (self.legacy_emails or {}).values()})
        if emails:
            rows = conn.execute(
                sa.text(
                    "select lower(trim(email)), workos_user_id from users "
                    "where lower(trim(email)) = any(:emails)"
                ),
                {"emails": emails},
            )
            for email, user in rows:
                self._by_email.setdefault(str(email), []).append(str(user))
            users = sorted({u for us in self._by_email.values() for u in us})
            rows = conn.execute(
                sa.text(
                    "select m.workos_user_id, o.id from user_org_memberships m "
                    "join organizations o on o.id = m.org_id "
                    "where m.workos_user_id = any(:users) and m.status = 'active' "
                    "and m.role = 'owner' and o.type = any(:types)"
                ),
                {"users": users, "types": list(PERSONAL_ORG_TYPES)},
            )
            for user, org in rows:
                self._personal.setdefault(str(user), []).append(uuid.UUID(str(org)))
        wanted = {i.org_id for i in self.user_map.values() if i.org_id is not None}
        wanted |= set(self.org_map.values())
        wanted |= {o for orgs in self._personal.values() for o in orgs}
        if wanted:
            rows = conn.execute(
                sa.text("select id from organizations where id = any(:ids)"),
                {"ids": sorted(wanted)},
            )
            self._orgs = {uuid.UUID(str(r)) for r in rows.scalars()}

    def resolve(self, clerk_user_id: str) -> Identity | Unmapped:
        hit = self._cache.get(clerk_user_id)
        if hit is None:
            hit = self._cache[clerk_user_id] = self._resolve(clerk_user_id)
        return hit

    def _resolve(self, clerk: str) -> Identity | Unmapped:
        identity = self.user_map.get(clerk)
        if identity is None and clerk in PLACEHOLDER_ACTORS:
            return Identity(PLACEHOLDER_ACTOR, None, "placeholder")
        if identity is None and WORKOS_USER_ID.match(clerk):
            return self._workos_user(clerk)
        if identity is None:
            found = self._from_users_table(clerk)
            if isinstance(found, Unmapped):
                return found
            identity = found
        if identity.org_id is not None and identity.org_id not in self._orgs:
            return Unmapped(f"unknown organization: {identity.org_id} (for Clerk user {clerk})")
        return identity

    def _workos_user(self, user: str) -> Identity | Unmapped:
        orgs = self._workos.get(user)
        if orgs is None:
            return Unmapped(
                f"unmapped user: WorkOS user {user} (written into clerkUserId after the WorkOS "
                "cut-over) is not in the target's users table"
            )
        org = self.org_map.get(user)
        if org is None and len(set(orgs)) == 1:
            org = orgs[0]
        return Identity(user, org, "workos-id")

    def _from_users_table(self, clerk: str) -> Identity | Unmapped:
        email = (self.legacy_emails or {}).get(clerk)
        if email is None:
            where = "--user-map" if self.legacy_emails is None else "--user-map or legacy users"
            return Unmapped(f"unmapped user: Clerk user {clerk} is in neither {where}")
        users = self._by_email.get(email.strip().lower(), [])
        if not users:
            return Unmapped(
                f"unmapped user: no canonical user has the e-mail of Clerk user {clerk}"
            )
        if len(users) > 1:
            return Unmapped(
                f"unmapped user: {len(users)} canonical users share the e-mail "
                f"of Clerk user {clerk}"
            )
        user = users[0]
        org = self.org_map.get(user)
        if org is None:
            personal = self._personal.get(user, [])
            if len(personal) != 1:
                return Unmapped(
                    f"unmapped user: {user} has {len(personal)} personal organizations "
                    "(name one in --org-map)"
                )
            org = personal[0]
        return Identity(user, org, "users-table")


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """Legacy action and resource type names → the catalog's."""

    catalog: AuditCatalog
    legacy_resource_types: Mapping[str, str]

    def action(
        self, legacy: str, resource_type: str | None = None
    ) -> tuple[ActionSpec, Outcome] | None:
        """The catalog action of a legacy name; generic verbs of the first era (``create`` on
        ``events``) are looked up as ``"<legacy resource type>:<verb>"``."""
        spec = None
        if resource_type is not None:
            spec = self.catalog.legacy_action(f"{resource_type}:{legacy}")
        spec = spec or self.catalog.legacy_action(legacy) or self.catalog.actions.get(legacy)
        if spec is None:
            return None
        outcome: Outcome = "success"
        if legacy.startswith("FAILED_"):
            outcome = "denied" if legacy.endswith("_UNAUTHORIZED") else "failure"
        return spec, outcome

    def resource_type(self, legacy: str) -> str | None:
        mapped = self.legacy_resource_types.get(legacy)
        if mapped is not None:
            return mapped
        return legacy if legacy in self.catalog.resource_types else None
