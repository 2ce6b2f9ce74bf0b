"""JSONL and CSV exports rendered by PostgreSQL and streamed by ``COPY``, little Python per row.

Each event's line is built by the statement itself (``json_build_object`` in column order, the
time as ``datetime.isoformat()`` in UTC, the address as text, JSON values as stored). A JSONL
export copies those bytes; only the few lines holding sealed values of an erased subject, or
values stored as already erased, are parsed and presented. A CSV export's rows are rendered
the same way, cell by cell (neutralised and quoted by the statement), and copied alike: before,
it built an ``AuditRecord`` per row from a server-side cursor's rows and ran at a tenth of the
raw ``COPY``'s pace. :mod:`carelog.audit.export` records the export and chooses this path.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from typing import Any, cast

import anyio
import orjson
import psycopg
import sqlalchemy as sa

from carelog.audit.filters import AuditFilters
from carelog.audit.query import COLUMNS, JSON_COLUMNS, select_events
from carelog.audit.rendered import event_json, rendered_value
from carelog.audit.sealing import ERASED_VALUE, present
from carelog.db.schema import AuditLog, DataSubject
from carelog.db.unit import DIALECT, Unit, exact_json_loads

_LOG = cast(sa.Table, AuditLog.__table__).c
_SUBJECTS = cast(sa.Table, DataSubject.__table__).c
#: Each event's JSONL line rendered by PostgreSQL (:func:`carelog.audit.rendered.event_json`),
#: with whether its subject is erased beside it: Python only copies the bytes, except for the
#: few rows that must be presented (below). Before, building an ``AuditRecord`` and
#: re-encoding it per row made the CLI export 7-10x slower than ``COPY (SELECT row_to_json…)``.
_JSONL_LINE = event_json()
# Looked up only for events that name a subject (the look-up is most of PostgreSQL's cost per
# row otherwise: 13-16 us against 9 us without it, 12 for row_to_json).
_ERASED = sa.case(
    (_LOG.data_subject_id.is_(None), sa.false()),
    else_=sa.exists().where(
        _SUBJECTS.org_id == _LOG.org_id,
        _SUBJECTS.subject_id == _LOG.data_subject_id,
        _SUBJECTS.erased_at.is_not(None),
    ),
)
_JSONL_COLUMNS = (_JSONL_LINE.label("line"), _ERASED.label("erased"))

# Characters that make a spreadsheet treat a cell as a formula or control input (OWASP "CSV
# Injection": = + - @, tab, carriage return), plus the quote that marks a neutralised cell.
_FORMULA_START = frozenset("=+-@\t\r'")
#: Columns whose text can never start with a formula character or need quoting.
_PLAIN_COLUMNS = frozenset({"id", "org_id", "created_at", "ip_address"})


def _csv_cell(name: str) -> sa.ColumnElement[str]:
    """One CSV cell, computed by PostgreSQL: JSON documents as stored, other values
    neutralised (:func:`neutralise_cell`'s rule), quoted when they hold a quote, comma, CR or
    LF (what the standard library's writer quotes), nothing for a null."""
    text: sa.ColumnElement[str] = sa.cast(rendered_value(name), sa.Text)
    if name in _PLAIN_COLUMNS:
        return sa.func.coalesce(text, "")
    if name not in JSON_COLUMNS:
        text = sa.case(
            (sa.func.left(text, 1).in_(sorted(_FORMULA_START)), sa.literal("'") + text),
            else_=text,
        )
    quoted = sa.case(
        (text.op("~")(sa.literal('[",\r\n]')), '"' + sa.func.replace(text, '"', '""') + '"'),
        else_=text,
    )
    return sa.func.coalesce(quoted, "")


#: Each event's CSV row rendered by PostgreSQL, RFC 4180 line end included.
_CSV_COLUMNS = (
    (sa.func.concat_ws(",", *(_csv_cell(name) for name in COLUMNS)) + "\r\n").label("line"),
    _ERASED.label("erased"),
)
_ERASED_MARK = orjson.dumps(ERASED_VALUE).decode()
#: How a batch of rows becomes the export's bytes: each row's rendered line and whether its
#: subject is erased. One call per batch, so a format's writer is set up once per batch.
Render = Callable[[list[tuple[str, bool]]], bytes]


def jsonl_line(line: str, erased: bool) -> bytes:
    """One line as exported: as PostgreSQL rendered it, or presented when its subject is erased
    (sealed values become ``[erased]``) or it holds values stored as already erased.

    Whatever the format version: :func:`present` changes nothing else, so every line of a
    subject that is not erased (the writer's format-2 lines included) is only copied."""
    if not erased and _ERASED_MARK not in line:
        return line.encode() + b"\n"
    event = exact_json_loads(line)
    for key in JSON_COLUMNS:
        event[key] = present(event[key], erased)
    return _compact(event).encode() + b"\n"


def _compact(value: Any) -> str:
    """Compact JSON; the standard library for an integer orjson cannot write (over 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def jsonl_lines(rows: list[tuple[str, bool]]) -> bytes:
    return b"".join([jsonl_line(line, erased) for line, erased in rows])


def neutralise_cell(value: str) -> str:
    """A CSV cell no spreadsheet evaluates: a leading ``'`` is added when the cell starts with
    a formula character (or with ``'`` itself); CSV exports apply this rule in their
    statement (``_csv_cell``). The original is always :func:`restore_cell` of
    the output: drop one leading ``'`` if there is one. defusedcsv (the maintained library for
    this) was considered: it leaves tab and CR alone and rewrites ``|`` in a way that cannot be
    undone, and an audit export must be recoverable byte for byte."""
    return "'" + value if value and value[0] in _FORMULA_START else value


def restore_cell(value: str) -> str:
    """The original value of a cell written by :func:`neutralise_cell`."""
    return value[1:] if value.startswith("'") else value


def csv_document(rows: list[list[str]]) -> bytes:
    """Rows as CSV with RFC 4180 line ends: a field holding a lone CR is then quoted too (the
    writer quotes fields containing characters of the line terminator), so no value can split
    a row."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


#: The header row of every CSV export, empty or not.
CSV_HEADER = csv_document([list(COLUMNS)])


def _csv_row(line: str, erased: bool) -> str:
    """A row as PostgreSQL rendered it, or re-written with its sealed values presented (the
    rows of an erased subject, or holding values stored as erased; a row that only mentions
    the mark elsewhere is re-written to the same cells)."""
    if not erased and _ERASED_VALUE_TEXT not in line:
        return line
    cells = next(csv.reader([line], lineterminator="\r\n"))
    for index in _CSV_JSON_INDEXES:
        if cells[index]:
            cells[index] = _compact(present(exact_json_loads(cells[index]), erased))
    return csv_document([cells]).decode()


_ERASED_VALUE_TEXT = str(ERASED_VALUE)
_CSV_JSON_INDEXES = tuple(i for i, name in enumerate(COLUMNS) if name in JSON_COLUMNS)


def csv_lines(rows: list[tuple[str, bool]]) -> bytes:
    """CSV rows as PostgreSQL rendered them, presented like :func:`jsonl_line`."""
    return "".join([_csv_row(line, erased) for line, erased in rows]).encode()


#: The columns each format's statement selects: the rendered line, and the erased flag.
_SELECTED = {"jsonl": _JSONL_COLUMNS, "csv": _CSV_COLUMNS}
_RENDER: dict[str, Render] = {"jsonl": jsonl_lines, "csv": csv_lines}


async def stream_lines(
    session: Unit,
    org_id: uuid.UUID,
    filters: AuditFilters,
    fmt: str,
    batch_size: int,
    on_rows: Callable[[int], object] | None,
    close_seconds: float,
) -> AsyncGenerator[bytes, None]:
    """The export's rows (``fmt``: ``jsonl`` or ``csv``), rendered by PostgreSQL and read
    through ``COPY … TO STDOUT (FORMAT binary)`` in the session's own transaction (same role,
    same RLS context): PostgreSQL renders rows while Python ships the previous ones, instead
    of waiting for each
    ``FETCH`` of a server-side cursor.

    A COPY left early (the client hung up) is cancelled, which aborts what it runs in: it runs
    in a savepoint, so the export's own transaction survives to record the abort."""
    render = _RENDER[fmt]
    compiled = select_events(org_id, filters, columns=_SELECTED[fmt]).compile(
        dialect=DIALECT, compile_kwargs={"render_postcompile": True}
    )
    driver = session.driver
    copy_sql = f"COPY ({compiled}) TO STDOUT (FORMAT binary)"
    rows: list[tuple[str, bool]] = []
    async with driver.cursor() as cursor:
        await cursor.execute("SAVEPOINT carelog_export_copy")
        copying = cursor.copy(copy_sql, compiled.params)
        copy = await copying.__aenter__()
        try:
            copy.set_types(["text", "bool"])
            async for row in copy.rows():
                rows.append(row)
                if len(rows) == batch_size:
                    if on_rows is not None:
                        on_rows(batch_size)
                    yield render(rows)
                    rows = []
        except BaseException as exc:
            # Interrupted (a hang-up cancels the task, and may keep cancelling every await):
            # the COPY is cancelled and the savepoint undone shielded, so the connection stays
            # usable and the export can still record its abort.
            # A generator left unclosed is finalised later, when its transaction may be over:
            # then there is nothing to undo, and the original error is the one to raise.
            with anyio.move_on_after(close_seconds, shield=True), suppress(psycopg.Error):
                await copying.__aexit__(type(exc), exc, exc.__traceback__)
                await cursor.execute("ROLLBACK TO SAVEPOINT carelog_export_copy")
            raise
        await copying.__aexit__(None, None, None)
        await cursor.execute("RELEASE SAVEPOINT carelog_export_copy")
    if rows:
        if on_rows is not None:
            on_rows(len(rows))
        yield render(rows)
