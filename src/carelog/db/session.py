"""Units of work that carry the tenant context into PostgreSQL.

Every unit of work is ONE transaction whose first statement sets ``app.user_id`` and
``app.org_id`` with ``set_config(..., true)``: transaction-local, so the context can never leak
to the next user of a pooled connection, and it is gone the moment the transaction ends (a
service that commits early loses its context and sees nothing, failing closed). The unit of work
commits when the block exits cleanly and rolls back on any exception; services never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carelog.core.errors import CarelogError
from carelog.core.ids import parse_uuid
from carelog.db.engine import Database

SYSTEM_ACTOR_PREFIX = "system:"
_ambient: ContextVar[AsyncSession | None] = ContextVar("carelog_unit_of_work", default=None)
# The unit whose caller shows nothing it read until the unit has committed, and who it is for.
_promise: ContextVar[tuple[AsyncSession, str, uuid.UUID] | None] = ContextVar(
    "carelog_unit_commits_first", default=None
)
_SET_CONTEXT = sa.text(
    "select set_config('app.user_id', :user_id, true), set_config('app.org_id', :org_id, true)"
)
# The same context and the caller's membership in one statement (migration 0008).
_ENTER_ORG = sa.text("select role, status from app.enter_org(:user_id, :org_id)")


@dataclass(frozen=True)
class Membership:
    """The caller's row in ``user_org_memberships`` for the unit's organization, if any."""

    role: str
    status: str


def parse_org_id(org_id: uuid.UUID | str) -> uuid.UUID:
    return parse_uuid(org_id, field="org_id")


def _check_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise CarelogError("a user id is required", field="user_id")
    if user_id.startswith(SYSTEM_ACTOR_PREFIX):
        raise CarelogError(
            "system actors use system_scope, not org_scope",
            field="user_id",
            hint="use system_scope('system:<name>', org_id)",
        )
    return user_id


def _check_system_actor(actor_id: str) -> str:
    if not actor_id.startswith(SYSTEM_ACTOR_PREFIX) or len(actor_id) <= len(SYSTEM_ACTOR_PREFIX):
        raise CarelogError(
            f"system actor {actor_id!r} must look like 'system:<name>'", field="actor_id"
        )
    return actor_id


@dataclass
class Scopes:
    """Session factories for the two runtime roles of one database."""

    database: Database

    def __post_init__(self) -> None:
        self._app = async_sessionmaker(self.database.async_engine("app"), expire_on_commit=False)
        self._system = async_sessionmaker(
            self.database.async_engine("system"), expire_on_commit=False
        )
        self._maintenance: async_sessionmaker[AsyncSession] | None = None

    @asynccontextmanager
    async def org_scope(self, user_id: str, org_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
        """A person acting inside one organization (RLS: active membership required)."""
        async with self._unit(self._app, _check_user_id(user_id), str(parse_org_id(org_id))) as s:
            yield s

    @asynccontextmanager
    async def member_scope(
        self, user_id: str, org_id: uuid.UUID | str, *, commits_before_disclosure: bool = False
    ) -> AsyncIterator[tuple[AsyncSession, Membership | None]]:
        """:meth:`org_scope` that also returns the caller's membership, read by the same first
        statement that sets the context (one round trip, not two): the request path's unit.

        ``commits_before_disclosure`` is the caller's promise that nothing read in the unit
        leaves the process before the unit has committed (a request whose unit ends before its
        response is sent). Only then may a fail-closed read's audit event join the unit's
        transaction instead of waiting for the writer: the event and the disclosure then stand
        or fall together, as they must (see :func:`commits_before_disclosure`)."""
        user, org = _check_user_id(user_id), parse_org_id(org_id)
        async with self._app() as session, session.begin():
            row = (await session.execute(_ENTER_ORG, {"user_id": user, "org_id": str(org)})).first()
            membership = None if row is None else Membership(row.role, row.status)
            token = _ambient.set(session)
            promise = _promise.set((session, user, org) if commits_before_disclosure else None)
            try:
                yield session, membership
            finally:
                _promise.reset(promise)
                _ambient.reset(token)

    @asynccontextmanager
    async def system_scope(
        self, actor_id: str, org_id: uuid.UUID | str
    ) -> AsyncIterator[AsyncSession]:
        """A webhook or job acting for one explicit organization (never 'all orgs')."""
        async with self._unit(
            self._system, _check_system_actor(actor_id), str(parse_org_id(org_id))
        ) as s:
            yield s

    @asynccontextmanager
    async def maintenance_scope(
        self, actor_id: str, org_id: uuid.UUID | str
    ) -> AsyncIterator[AsyncSession]:
        """A maintenance job (retention purge) for one organization: the only role that may
        run the purge functions, so neither a request nor a webhook can ever delete events.
        Its engine is made on first use: the web service never opens it."""
        if self._maintenance is None:
            self._maintenance = async_sessionmaker(
                self.database.async_engine("maintenance"), expire_on_commit=False
            )
        async with self._unit(
            self._maintenance, _check_system_actor(actor_id), str(parse_org_id(org_id))
        ) as s:
            yield s

    @asynccontextmanager
    async def public_scope(self) -> AsyncIterator[AsyncSession]:
        """An anonymous visitor: only the public rows (categories, published profiles...)."""
        async with self._unit(self._app, "", "") as s:
            yield s

    @asynccontextmanager
    async def _unit(
        self, factory: async_sessionmaker[AsyncSession], user_id: str, org_id: str
    ) -> AsyncIterator[AsyncSession]:
        async with factory() as session, session.begin():
            await session.execute(_SET_CONTEXT, {"user_id": user_id, "org_id": org_id})
            token = _ambient.set(session)
            try:
                yield session
            finally:
                _ambient.reset(token)


def current_unit() -> AsyncSession | None:
    """The unit of work the caller is inside, if any (the audit API joins its transaction)."""
    return _ambient.get()


def commits_before_disclosure(actor_id: str | None, org_id: uuid.UUID | None) -> bool:
    """Whether the current unit commits before anything read in it is disclosed, and runs for
    this actor in this organization.

    False in every unit but a :meth:`Scopes.member_scope` opened with that promise, and false
    there too for an event of another actor (a system job inside a request): a script inside
    ``org_scope`` may print what it read before its block ends, and a streaming response
    commits only after its last byte, so their read events keep going through the writer."""
    promise = _promise.get()
    return (
        promise is not None
        and promise[0] is _ambient.get()
        and promise[1] == actor_id
        and promise[2] == org_id
    )
