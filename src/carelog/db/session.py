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
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass

import anyio
import psycopg
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from carelog.core.errors import CarelogError
from carelog.core.ids import parse_uuid
from carelog.db.engine import Database, RuntimeKind
from carelog.db.unit import Unit, translated

SYSTEM_ACTOR_PREFIX = "system:"
IDLE = TransactionStatus.IDLE
_ambient: ContextVar[Unit | None] = ContextVar("carelog_unit_of_work", default=None)
# The unit whose caller shows nothing it read until the unit has committed, and who it is for.
_promise: ContextVar[tuple[Unit, str, uuid.UUID] | None] = ContextVar(
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


@asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[Unit]:
    """A pooled connection's transaction: committed when the block exits cleanly, rolled back
    on any exception; a connection found broken is dropped and the pool renewed (the other
    pooled connections reached the same server), as SQLAlchemy does on a disconnect.

    The block's first statement opens the transaction (:meth:`Unit.begin`: ``BEGIN`` travels
    with it), so the connection is in autocommit mode for the unit's life, and back out of it
    before the pool has it again (SQLAlchemy's own users of the pool expect psycopg's
    default)."""
    proxied = await engine.raw_connection()
    driver = proxied.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    unit = Unit(driver)
    try:
        try:
            await driver.set_autocommit(True)  # inside: the connection goes back even so
            yield unit
            await unit.commit()  # with what the block deferred (an in-transaction audit event)
        except psycopg.Error as exc:  # COMMIT itself, or the driver used directly (COPY)
            raise translated(exc, "COMMIT", None, driver.broken) from exc
        except BaseException:
            unit.discard_deferred()
            raise
    finally:
        # Shielded: a request cancelled mid-unit (the client hung up) must still roll back and
        # hand its connection back.
        with anyio.CancelScope(shield=True):
            if not (driver.broken or driver.closed) and driver.info.transaction_status != IDLE:
                with suppress(psycopg.Error):
                    await driver.rollback()
            if driver.broken or driver.closed:
                await greenlet_spawn(proxied.invalidate)
                await engine.dispose(close=False)
            else:
                with suppress(psycopg.Error):
                    await driver.set_autocommit(False)
            await greenlet_spawn(proxied.close)


@dataclass
class Scopes:
    """Units of work for the runtime roles of one database."""

    database: Database

    @asynccontextmanager
    async def org_scope(self, user_id: str, org_id: uuid.UUID | str) -> AsyncIterator[Unit]:
        """A person acting inside one organization (RLS: active membership required)."""
        async with self._unit("app", _check_user_id(user_id), str(parse_org_id(org_id))) as s:
            yield s

    @asynccontextmanager
    async def member_scope(
        self, user_id: str, org_id: uuid.UUID | str, *, commits_before_disclosure: bool = False
    ) -> AsyncIterator[tuple[Unit, Membership | None]]:
        """:meth:`org_scope` that also returns the caller's membership, read by the same first
        statement that sets the context (one round trip, not two): the request path's unit.

        ``commits_before_disclosure`` is the caller's promise that nothing read in the unit
        leaves the process before the unit has committed (a request whose unit ends before its
        response is sent). Only then may a fail-closed read's audit event join the unit's
        transaction instead of waiting for the writer: the event and the disclosure then stand
        or fall together, as they must (see :func:`commits_before_disclosure`)."""
        user, org = _check_user_id(user_id), parse_org_id(org_id)
        async with _transaction(self.database.async_engine("app")) as unit:
            row = (await unit.begin(_ENTER_ORG, {"user_id": user, "org_id": str(org)})).first()
            membership = None if row is None else Membership(row.role, row.status)
            token = _ambient.set(unit)
            promise = _promise.set((unit, user, org) if commits_before_disclosure else None)
            try:
                yield unit, membership
            finally:
                _promise.reset(promise)
                _ambient.reset(token)

    @asynccontextmanager
    async def system_scope(self, actor_id: str, org_id: uuid.UUID | str) -> AsyncIterator[Unit]:
        """A webhook or job acting for one explicit organization (never 'all orgs')."""
        async with self._unit(
            "system", _check_system_actor(actor_id), str(parse_org_id(org_id))
        ) as s:
            yield s

    @asynccontextmanager
    async def maintenance_scope(
        self, actor_id: str, org_id: uuid.UUID | str
    ) -> AsyncIterator[Unit]:
        """A maintenance job (retention purge) for one organization: the only role that may
        run the purge functions, so neither a request nor a webhook can ever delete events.
        Its engine is made on first use: the web service never opens it."""
        async with self._unit(
            "maintenance", _check_system_actor(actor_id), str(parse_org_id(org_id))
        ) as s:
            yield s

    @asynccontextmanager
    async def public_scope(self) -> AsyncIterator[Unit]:
        """An anonymous visitor: only the public rows (categories, published profiles...)."""
        async with self._unit("app", "", "") as s:
            yield s

    @asynccontextmanager
    async def _unit(self, kind: RuntimeKind, user_id: str, org_id: str) -> AsyncIterator[Unit]:
        async with _transaction(self.database.async_engine(kind)) as unit:
            await unit.begin(_SET_CONTEXT, {"user_id": user_id, "org_id": org_id})
            token = _ambient.set(unit)
            try:
                yield unit
            finally:
                _ambient.reset(token)


def current_unit() -> Unit | None:
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
