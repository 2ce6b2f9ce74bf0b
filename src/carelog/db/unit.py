"""A unit of work's statements, run on the pooled psycopg connection itself.

Why not SQLAlchemy's ``AsyncSession``: measured inside the served app under the same load
(``wrk -c32``), one transaction of two statements ran at 814 requests/s through an
``AsyncSession`` and at 1,953 through psycopg directly, and ``carelog bench unit`` put
SQLAlchemy's unit of work at 2-3x psycopg's CPU. Every audited request paid that before doing
its own work. SQLAlchemy stays what it is good at here: the pool (with its ``connect`` events
and invalidation), the schema, and compiling statements, once per statement shape.

A :class:`Unit` runs ``sa.text`` statements (the queries modules) and Core statements, returns
:class:`Rows` with the result methods services use (``first``, ``one``, ``scalar``,
``scalars``, ``mappings``...), and raises SQLAlchemy's exception classes
(``IntegrityError``, ``OperationalError``...) so callers and the HTTP error handlers keep
one vocabulary for database errors, whichever layer ran the statement.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import OrderedDict, namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import orjson
import psycopg
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from psycopg.rows import RowMaker
from psycopg.types.json import set_json_loads
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.compiler import SQLCompiler

#: Nineteen digits in a row: possibly an integer wider than 64 bits.
_WIDE_NUMBER = re.compile(rb"\d{19}")


def exact_json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """JSON documents from PostgreSQL parsed by orjson (C), 3-4x the standard library's pace
    on an audit page's fifty events. orjson turns an integer wider than 64 bits (which
    ``jsonb`` stores exactly) into a float and refuses numbers beyond a double's range: a
    document that may hold one is parsed by the standard library, which keeps it exact."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _WIDE_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


set_json_loads(exact_json_loads)  # psycopg's global adapters: every connection of the process
DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]
#: A row: a named tuple of the statement's columns (``row.name`` and ``row[0]``).
Row = Any
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
_CACHE_SIZE = 500
_BEGIN = "BEGIN; "
_observers: list[Callable[[str], object]] = []
_cursor_names = itertools.count()


@contextmanager
def observing_statements(observer: Callable[[str], object]) -> Iterator[None]:
    """Call ``observer`` with the SQL of every statement a unit sends while the block runs
    (what SQLAlchemy's ``before_cursor_execute`` event gave: tests count round trips)."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


_compiled: OrderedDict[Any, SQLCompiler] = OrderedDict()


def _remember(key: Any, statement: sa.ClauseElement, cache_key: Any = None) -> SQLCompiler:
    found = _compiled.get(key)
    if found is not None:
        _compiled.move_to_end(key)
        return found
    compiled = statement.compile(dialect=DIALECT, cache_key=cache_key)
    assert isinstance(compiled, SQLCompiler)
    _compiled[key] = compiled
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return compiled


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> Any:
    # rename: a repeated column name (two set_config() calls) or one that is not an
    # identifier is still a row, its later duplicates reachable by position
    base = namedtuple("Row", names, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:  # SQLAlchemy's spelling, used by callers
            return self._asdict()

    return Row


def named_rows(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[Any]:
    """psycopg's row factory for :class:`Rows`: a named tuple per row, one class per column
    list (psycopg's own ``namedtuple_row`` refuses repeated names)."""
    description = cursor.description
    if description is None:
        return tuple
    return cast(RowMaker[Any], _row_class(tuple(column.name for column in description))._make)


def _bound(compiled: SQLCompiler, values: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Values as the driver takes them: each type's bind processor applied (JSONB, arrays),
    as SQLAlchemy's execution context applies them."""
    processors = cast(Mapping[str, Any], compiled._bind_processors)
    for name, process in processors.items():
        if name in values and values[name] is not None:
            values[name] = process(values[name])
    return values


def compile_statement(
    executable: sa.Executable, params: Mapping[str, Any] | None
) -> tuple[str, Any]:
    """The driver's SQL and parameters for ``statement``; compiled once per statement shape.

    A ``sa.text`` statement is keyed by the object (queries modules define each once); a Core
    statement by SQLAlchemy's own cache key, whose extracted values fill the parameters, the
    way SQLAlchemy's compiled cache does. A statement with an expanding ``IN`` list is compiled
    per call, with its values rendered."""
    statement = cast(sa.ClauseElement, executable)
    if isinstance(statement, sa.TextClause):
        compiled = _remember(("text", id(statement), statement), statement)
        if not compiled.post_compile_params:
            return compiled.string, _bound(compiled, compiled.construct_params(params))
    else:
        key = statement._generate_cache_key()
        if key is not None:
            compiled = _remember(key.key, statement, key)
            if not compiled.post_compile_params:
                values = compiled.construct_params(params, extracted_parameters=key.bindparams)
                return compiled.string, _bound(compiled, values)
    if params:
        statement = statement.params(params)
    once = statement.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
    assert isinstance(once, SQLCompiler)
    return once.string, _bound(once, once.construct_params())


def translated(exc: psycopg.Error, sql: str, params: Any, broken: bool) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception SQLAlchemy itself would raise for ``exc``."""
    error = sa_exc.DBAPIError.instance(
        sql, params, exc, psycopg.Error, connection_invalidated=broken
    )
    assert isinstance(error, sa_exc.DBAPIError)
    return error


class Rows:
    """A statement's rows, fetched when it ran (services read small results whole)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    fetchall = all

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sa_exc.MultipleResultsFound("several rows where one or none was required")
        return self.first()

    def one(self) -> Any:
        if not self._rows:
            raise sa_exc.NoResultFound("no row where one was required")
        return self.one_or_none()

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> Rows:
        return Rows([row[0] for row in self._rows], self.rowcount)

    def mappings(self) -> Rows:
        return Rows([row._asdict() for row in self._rows], self.rowcount)


class Unit:
    """One transaction on one pooled connection: what every scope yields.

    ``driver`` is the psycopg connection, for what only the driver does (``COPY``, server-side
    cursors); statements through :meth:`execute` and the driver's share the transaction."""

    __slots__ = ("_deferred", "_driver")

    def __init__(self, driver: psycopg.AsyncConnection[Any]) -> None:
        self._driver = driver
        self._deferred: list[tuple[str, Any]] = []

    @property
    def driver(self) -> psycopg.AsyncConnection[Any]:
        """The psycopg connection, for what only the driver does (``COPY``, server-side
        cursors). Not while a deferred statement waits: it would run after what the caller
        sends here although it was asked for first (:meth:`flush` it)."""
        if self._deferred:
            raise RuntimeError("a deferred statement is pending: await unit.flush() first")
        return self._driver

    def defer(self, statement: sa.Executable, params: Mapping[str, Any]) -> None:
        """Run ``statement`` before the unit's next statement, or with its ``COMMIT``.

        For a row that must commit or roll back with the unit but that nothing reads back at
        once (an audit event stored in the caller's transaction): sent with the ``COMMIT``, as
        one simple query, it costs no round trip of its own, and it still stands or falls with
        the transaction (should it fail, the ``COMMIT`` after it never runs). Any later
        statement of the unit (:meth:`execute`, :meth:`begin_nested`, :meth:`stream`) runs it
        first, so the unit reads its own rows as before."""
        sql, args = compile_statement(statement, params)
        for observe in _observers:
            observe(sql)
        self._deferred.append((sql, args))

    async def flush(self) -> None:
        """Run the deferred statements now, in the order they were deferred."""
        while self._deferred:
            sql, args = self._deferred.pop(0)
            await self._run(sql, args, observed=True)

    async def commit(self) -> None:
        """``COMMIT``, with the deferred statements in front of it in one simple query (their
        values bound by psycopg's client-side cursor); nothing to send if the unit never began
        its transaction."""
        if not self._deferred:
            await self._driver.commit()
            return
        cursor = psycopg.AsyncClientCursor(self._driver)
        try:
            parts = [cursor.mogrify(sql, args) for sql, args in self._deferred]
            self._deferred.clear()
            await cursor.execute("; ".join([*parts, "COMMIT"]))
        finally:
            await cursor.close()

    def discard_deferred(self) -> None:
        """Forget what was deferred (the transaction it belonged to is rolled back)."""
        self._deferred.clear()

    async def execute(
        self, statement: sa.Executable | str, params: Params = None, *, binary: bool = False
    ) -> Rows:
        """Run one statement (or one per parameter set) and fetch its rows. ``binary`` asks
        for the rows in PostgreSQL's binary format: ``bytea`` arrives as it is stored instead
        of hex-encoded, times and ids without text parsing (an audit page's 51 rows)."""
        many = isinstance(params, Sequence) and not isinstance(params, Mapping)
        if isinstance(statement, str):
            sql, args = statement, params
        elif many:
            assert isinstance(params, Sequence)
            compiled = [compile_statement(statement, p) for p in params]
            sql, args = compiled[0][0], [a for _, a in compiled]
        else:
            sql, args = compile_statement(statement, params)  # type: ignore[arg-type]
        if self._deferred:
            await self.flush()
        return await self._run(sql, args, many=many, binary=binary)

    async def begin(self, statement: sa.TextClause, params: Mapping[str, Any]) -> Rows:
        """Open the unit's transaction with its first statement, in one round trip.

        ``BEGIN`` and the statement (the context, or the context and the membership) travel as
        one simple query, its values bound by psycopg's client-side cursor (quoted for the
        connection's encoding): a unit of work was a ``BEGIN`` round trip and then its first
        statement's, each a psycopg execute with its Python around it. The connection must be
        in autocommit mode (the scope sets it) or psycopg would send a ``BEGIN`` of its own
        first. Should the statement fail, the transaction it opened is aborted and the scope
        rolls it back."""
        sql, args = compile_statement(statement, params)
        return await self._run(sql, args, begin=True)

    async def _run(
        self,
        sql: str,
        args: Any,
        *,
        many: bool = False,
        begin: bool = False,
        observed: bool = False,
        binary: bool = False,
    ) -> Rows:
        if not observed:
            for observe in _observers:
                observe(sql)
        cursor = (
            psycopg.AsyncClientCursor(self._driver, row_factory=named_rows)
            if begin
            else self._driver.cursor(row_factory=named_rows)
        )
        try:
            if many:
                await cursor.executemany(sql, cast(list[Mapping[str, Any]], args))
            elif begin:
                await cursor.execute(_BEGIN + sql, args)
                cursor.nextset()  # past BEGIN's own (empty) result, to the statement's rows
            else:
                await cursor.execute(sql, args, binary=binary or None)
            rows = await cursor.fetchall() if cursor.description is not None else []
            count = cursor.rowcount
        except psycopg.Error as exc:
            raise translated(exc, sql, args, self._driver.broken) from exc
        finally:
            await cursor.close()
        return Rows(rows, count)

    async def scalar(self, statement: sa.Executable | str, params: Params = None) -> Any:
        return (await self.execute(statement, params)).scalar()

    async def scalars(self, statement: sa.Executable | str, params: Params = None) -> Rows:
        return (await self.execute(statement, params)).scalars()

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: an error inside rolls back to it and propagates; the unit goes on.
        What the block defers runs inside the savepoint, or is forgotten with it."""
        await self.flush()
        try:
            async with self._driver.transaction():
                try:
                    yield
                    await self.flush()
                except BaseException:
                    self.discard_deferred()
                    raise
        except psycopg.Error as exc:
            raise translated(exc, "SAVEPOINT", None, self._driver.broken) from exc

    async def stream(self, statement: sa.Executable, batch_size: int) -> AsyncIterator[list[Any]]:
        """The rows a batch at a time through a server-side cursor (constant memory)."""
        sql, args = compile_statement(statement, None)
        name = f"carelog_stream_{next(_cursor_names)}"  # two streams may share a transaction
        await self.flush()
        async with self._driver.cursor(name=name, row_factory=named_rows) as cursor:
            try:
                await cursor.execute(sql, args)
                while batch := await cursor.fetchmany(batch_size):
                    yield batch
            except psycopg.Error as exc:
                raise translated(exc, sql, args, self._driver.broken) from exc


__all__ = ["DIALECT", "Row", "Rows", "Unit", "compile_statement", "exact_json_loads"]
