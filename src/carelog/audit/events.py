"""Turning one call into one minimised, validated event row.

Data minimisation happens here, before anything is stored: ``changes`` keeps only the fields
whose value changed, and any field the catalog classifies as PHI or secret (notes, diagnoses,
tokens, card data, guest names and e-mails...) never enters the log in clear. The legacy platform
copied guest names, e-mails and free-text notes into its log.

* Personal values (the catalog's ``personal_fields``) of an event about a data subject are
  sealed under that subject's data key (:mod:`carelog.audit.sealing`): readable for an
  Art. 15 export, erasable by destroying the key, comparable through an equality token.
* Everything else sensitive (secrets, and personal values of events naming no subject) is a
  keyed hash under the deployment mask key, as in schema version 1.

``SCHEMA_VERSION`` 2 names that layout; version-1 events (masks only) still verify unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from carelog.audit.catalog import OUTCOMES, ActionSpec, AuditCatalog, Outcome
from carelog.audit.context import AuditContext
from carelog.audit.errors import AuditInputError
from carelog.audit.fields import FieldClassifier
from carelog.audit.sealing import ERASED_VALUE, Sealer, SubjectKey
from carelog.core.ids import uuid7

MAX_METADATA_BYTES = 16 * 1024
MAX_CHANGES_BYTES = 64 * 1024
MAX_ID_LENGTH = 512
SCHEMA_VERSION = 2
#: Metadata keys written from the audit context when an admin impersonates the actor.
IMPERSONATED_BY = "impersonated_by"
SESSION_ID = "session_id"
MASK_PREFIX = "masked:hmac-sha256:"
#: ``build_event``'s marker for "the subject is erased": their personal values are dropped.
ERASED = object()


@dataclass(slots=True)
class AuditEvent:
    """One row of ``audit_logs``, as stored (already minimised and masked).

    Not frozen: a frozen dataclass pays ``object.__setattr__`` per field, and this object is
    built once per audit call on the hot path; nothing mutates it after ``build_event``.

    The actor is ``actor_id`` everywhere in code; only the column (and so this mirror of it,
    the export's and the integrity format's field) keeps the name ``workos_user_id``, because
    renaming a column of an append-only, hash-chained table would change the canonical bytes of
    every sealed event.
    """

    id: uuid.UUID
    org_id: uuid.UUID
    workos_user_id: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    data_subject_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    metadata: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    source: str = "live"
    schema_version: int = SCHEMA_VERSION

    @property
    def actor_id(self) -> str:
        return self.workos_user_id


class Masker:
    """Keyed hashing of sensitive values: equal inputs give equal masks, nothing is revealed.

    Keys are classified by meaning, whatever their spelling (``guestEmail``, ``guest-email``,
    ``{"guest": {"email": ...}}``): see :mod:`carelog.audit.fields`. With a :class:`Sealer`
    (the event names a data subject), personal fields are sealed under the subject's key
    instead; with ``erased`` they are replaced by a marker.
    """

    def __init__(
        self,
        key: bytes,
        sensitive_fields: Iterable[str],
        personal_fields: Iterable[str] = (),
    ) -> None:
        self._key = key
        personal = tuple(personal_fields)
        self.personal = FieldClassifier(personal)
        self.sensitive = FieldClassifier((*sensitive_fields, *personal))

    def has_personal(self, value: Any, parent: str | None = None) -> bool:
        """Whether a personal field occurs anywhere in ``value`` (worth fetching a key for)."""
        if type(value) in _LEAVES:
            return False
        if isinstance(value, Mapping):
            judge = self.personal.is_sensitive
            return any(
                (v is not None and judge(str(k), parent)) or self.has_personal(v, str(k))
                for k, v in value.items()
            )
        if isinstance(value, (list, tuple)):
            return any(self.has_personal(v, parent) for v in value)
        return False

    def mask_value(self, value: Any) -> str:
        if isinstance(value, str) and value.startswith(MASK_PREFIX):
            return value
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)
        return MASK_PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def scrub(
        self,
        value: Any,
        sealer: Sealer | None = None,
        path: str = "",
        *,
        erased: bool = False,
        parent: str | None = None,
    ) -> Any:
        """Mask (or seal) every sensitive field, at any depth (a key is judged with its
        parent's); ``path`` locates the value inside the event (the seal's associated data).

        Plain values (strings, numbers, booleans, null) are checked by exact type before the
        abstract ``Mapping`` test: on ``carelog bench audit``'s mix that test, run for every
        leaf, was a quarter of building an event."""
        if type(value) in _LEAVES:
            return value
        if isinstance(value, Mapping):
            sensitive = self.sensitive.is_sensitive
            personal = self.personal.is_sensitive
            out: dict[str, Any] = {}
            for k, v in value.items():
                name = k if type(k) is str else str(k)
                if v is None or not sensitive(name, parent):
                    if type(v) in _LEAVES:
                        out[name] = v
                    else:
                        here = f"{path}/{name}"
                        out[name] = self.scrub(v, sealer, here, erased=erased, parent=name)
                elif erased and personal(name, parent):
                    out[name] = ERASED_VALUE
                elif sealer is not None and personal(name, parent):
                    here = f"{path}/{name}"
                    out[name] = sealer.seal(_jsonable(v, here, MAX_CHANGES_BYTES), here)
                else:
                    out[name] = self.mask_value(v)
            return out
        if isinstance(value, (list, tuple)):
            return [
                v
                if type(v) in _LEAVES
                else self.scrub(v, sealer, f"{path}/{i}", erased=erased, parent=parent)
                for i, v in enumerate(value)
            ]
        return value


#: Values with nothing inside to mask: returned as they are, without the ``Mapping`` test.
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any, field: str, limit: int) -> Any:
    """Round-trip through JSON so only plain data is stored; enforce the size cap."""
    try:
        data = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise AuditInputError(
            f"is not JSON-serialisable ({exc})", field=field, hint="pass plain data"
        ) from None
    if len(data) > limit:
        raise AuditInputError(
            f"is {len(data)} bytes, more than the {limit}-byte cap",
            field=field,
            hint="store identifiers and summaries, not documents",
        )
    return orjson.loads(data)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, uuid.UUID)):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(type(value).__name__)


def minimise_changes(changes: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, ...]:
    """Keep only the fields whose value differs between old and new values."""
    if changes is None:
        return None, None
    if not isinstance(changes, Mapping):
        raise AuditInputError(
            "must be a mapping with old_values and/or new_values", field="changes"
        )
    unknown = set(changes) - {"old_values", "new_values"}
    if unknown:
        raise AuditInputError(
            f"has unexpected keys {sorted(unknown)}",
            field="changes",
            hint='use {"old_values": {...}, "new_values": {...}}',
        )
    old = changes.get("old_values") or {}
    new = changes.get("new_values") or {}
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        raise AuditInputError("old_values and new_values must be mappings", field="changes")
    keys = [k for k in {**old, **new} if k not in old or k not in new or old[k] != new[k]]
    old_min = {k: old[k] for k in keys if k in old}
    new_min = {k: new[k] for k in keys if k in new}
    return (old_min or None), (new_min or None)


_FLAT = (str, int, bool, type(None))
_FLAT_LIMIT = 64  # short flat mappings cannot exceed the size cap unless a string is huge


def _plain_metadata(metadata: Mapping[str, Any], masker: Masker) -> dict[str, Any] | None:
    """The common case without a JSON round trip: a short mapping of str keys to plain scalars,
    none of them sensitive. Returns None when the general path is needed."""
    if len(metadata) > _FLAT_LIMIT or not metadata:
        return None
    judge = masker.sensitive.is_sensitive
    total = 0
    for key, value in metadata.items():
        if type(key) is not str or type(value) not in _FLAT or judge(key):
            return None
        if type(value) is str:
            total += len(value)
    if total > MAX_METADATA_BYTES // 4:
        return None
    return dict(metadata)


def _optional_id(value: object, field: str) -> str | None:
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        raise AuditInputError(f"must be 1-{MAX_ID_LENGTH} characters", field=field)
    return text


def build_event(
    catalog: AuditCatalog,
    masker: Masker,
    context: AuditContext,
    action: str,
    resource_type: str,
    resource_id: object,
    changes: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    *,
    data_subject: object = None,
    outcome: Outcome = "success",
    subject_key: SubjectKey | object | None = None,
) -> tuple[AuditEvent, ActionSpec]:
    """``subject_key``: the data subject's key (personal values get sealed), :data:`ERASED`
    (they are dropped), or None (they are masked like secrets)."""
    # The common case takes the fast lookups; anything unusual goes to the checks that explain.
    spec = catalog.actions.get(action)
    if spec is None:
        spec = catalog.action(action)
    if resource_type not in catalog.resource_types:
        catalog.check_resource_type(resource_type)
    if outcome not in OUTCOMES:
        raise AuditInputError(
            f"unknown outcome {outcome!r}", field="outcome", hint="success, failure or denied"
        )
    actor, org = context.require()
    event_id = uuid7()
    erased = subject_key is ERASED
    sealer = Sealer(subject_key, org, event_id) if isinstance(subject_key, SubjectKey) else None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    if changes is not None:
        old, new = minimise_changes(changes)
        if old is not None or new is not None:
            scrubbed = masker.scrub({"o": old, "n": new}, sealer, erased=erased)
            both = _jsonable(scrubbed, "changes", MAX_CHANGES_BYTES)
            old, new = both["o"], both["n"]
    meta: dict[str, Any] | None = None
    if metadata is not None:
        if type(metadata) is not dict and not isinstance(metadata, Mapping):
            raise AuditInputError("must be a mapping", field="metadata")
        meta = _plain_metadata(metadata, masker)
        if meta is None:
            scrubbed_meta = masker.scrub(metadata, sealer, "/m", erased=erased)
            meta = _jsonable(scrubbed_meta, "metadata", MAX_METADATA_BYTES) or None
    if context.impersonator is not None:  # set last: a caller's metadata cannot forge it
        meta = {
            **(meta or {}),
            IMPERSONATED_BY: context.impersonator,
            SESSION_ID: context.session_id,
        }
    return AuditEvent(
        event_id,
        org,
        actor,
        context.actor_type,
        spec.name,
        resource_type,
        _optional_id(resource_id, "resource_id"),
        outcome,
        _optional_id(data_subject, "data_subject"),
        old,
        new,
        meta,
        context.ip_address,
        context.user_agent,
        context.request_id,
        datetime.now(UTC),
    ), spec
