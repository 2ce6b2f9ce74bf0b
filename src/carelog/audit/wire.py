"""The one row format of ``audit_logs`` on the way in, and the one statement that stores it.

Every path that stores events — the writer's group commits, an event inside a caller's
transaction, spool replays, redrives and the legacy import — sends :func:`wire_of` bodies in a
``json_to_recordset`` document to :func:`insert_sql`. ``tests/audit/test_row_definition.py``
checks :data:`COLUMNS` against the migrated table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from carelog.audit.events import AuditEvent

__all__ = ["COLUMNS", "INSERT_SQL", "document", "document_of", "insert_sql", "wire_of"]

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("org_id", "uuid"),
    ("workos_user_id", "text"),
    ("actor_type", "text"),
    ("action", "text"),
    ("resource_type", "text"),
    ("resource_id", "text"),
    ("outcome", "text"),
    ("data_subject_id", "text"),
    ("old_values", "jsonb"),
    ("new_values", "jsonb"),
    ("metadata", "jsonb"),
    ("ip_address", "inet"),
    ("user_agent", "text"),
    ("request_id", "text"),
    ("created_at", "timestamptz"),
    ("source", "text"),
    ("schema_version", "int2"),
)
_NAMES = ", ".join(name for name, _ in COLUMNS)


def insert_sql(document: str) -> str:
    """The one statement that stores audit rows: a ``json_to_recordset`` document of
    :func:`wire_of` bodies, ``document`` being its placeholder in the caller's style (the
    driver's ``%s``, or a SQLAlchemy bind for the insert inside a caller's transaction)."""
    return (
        f"INSERT INTO audit_logs ({_NAMES}) SELECT {_NAMES}"
        f" FROM json_to_recordset({document}) AS r("
        + ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
        + ") ON CONFLICT DO NOTHING"
    )


INSERT_SQL = insert_sql("%s::json")


def wire_of(event: AuditEvent) -> bytes:
    """The event as one JSON object (bytes): an element of the insert's document and the body
    of its spool line. The JSON columns are embedded as JSON, ids and times as strings.

    This is the one wire format: the live insert, the spool, replays, redrives and the legacy
    import all use it. orjson serialises the slotted dataclass natively (fields in column
    order, UUIDs and aware datetimes as RFC 4122 / RFC 3339 strings), several times cheaper
    than building a dict first."""
    return orjson.dumps(event)


def document_of(wires: Sequence[bytes]) -> str:
    """The insert's ``json_to_recordset`` document from :func:`wire_of` bodies."""
    return (b"[" + b",".join(wires) + b"]").decode()


def document(rows: Sequence[dict[str, Any]]) -> str:
    """The batch as one JSON array for ``json_to_recordset``, from parsed :func:`wire_of`
    bodies (spool lines being replayed or redriven)."""
    return orjson.dumps(list(rows)).decode()
