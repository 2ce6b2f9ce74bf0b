"""The vocabulary of actions and resource types, supplied by the platform as data.

The audit core knows no healthcare words: it validates events against whatever catalog it is
given, plus the few actions it emits itself (exports, retention, imports). Each action carries
what the core needs to treat it right: its category (reports), whether it is a read (reads are
made durable before the call returns, outside any business transaction), whether it touches
PHI (access reports) and whether it is fail-closed (no durable event, no read).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from carelog.audit.errors import AuditInputError
from carelog.audit.fields import canonical_field

Outcome = Literal["success", "failure", "denied"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure", "denied")
Access = Literal["read", "write", "security", "system"]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    category: str
    access: Access = "write"
    phi: bool = False
    fail_closed: bool = False
    legacy_names: tuple[str, ...] = ()
    description: str = ""

    @property
    def is_read(self) -> bool:
        return self.access == "read"


# Actions of the audit core itself: they describe the audit log, not the product.
CORE_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("AUDIT_LOG_EXPORTED", "compliance", "read", description="An export was produced."),
    ActionSpec(
        "AUDIT_LOG_EXPORT_STARTED",
        "compliance",
        "read",
        fail_closed=True,
        description="An export is about to send its first byte (requester, filters, reason).",
    ),
    ActionSpec(
        "AUDIT_LOG_EXPORT_ABORTED",
        "compliance",
        "read",
        description="An export stopped before its last byte (hang-up or error).",
    ),
    ActionSpec("AUDIT_LOG_QUERIED", "compliance", "read", description="The log was searched."),
    ActionSpec(
        "AUDIT_LOG_VERIFIED", "compliance", "read", description="The trail's integrity was checked."
    ),
    ActionSpec(
        "AUDIT_RETENTION_PURGED", "compliance", "system", description="Expired events dropped."
    ),
    ActionSpec("AUDIT_LEGAL_HOLD_PLACED", "compliance", "write"),
    ActionSpec("AUDIT_LEGAL_HOLD_RELEASED", "compliance", "write"),
    ActionSpec("AUDIT_RETENTION_POLICY_CHANGED", "compliance", "write"),
    ActionSpec("AUDIT_LOG_IMPORTED", "compliance", "system", description="Legacy rows imported."),
    ActionSpec(
        "SUBJECT_ERASED",
        "compliance",
        "write",
        description="A data subject was erased; the metadata is the signed erasure certificate.",
    ),
    ActionSpec(
        "SUBJECT_ERASURE_REFUSED",
        "compliance",
        "write",
        description="An erasure was refused (a legal hold applies).",
    ),
    ActionSpec("SUBJECT_DISCLOSURE_RECORDED", "compliance", "write"),
    ActionSpec("SUBJECT_ACCOUNTING_GENERATED", "compliance", "read"),
    ActionSpec("SUBJECT_DATA_EXPORTED", "compliance", "read", phi=True, fail_closed=True),
)
CORE_RESOURCE_TYPES: tuple[str, ...] = ("audit_log", "data_subject")


@dataclass(frozen=True)
class AuditCatalog:
    """Validated lookup of actions, resource types and fields that must never be copied."""

    actions: Mapping[str, ActionSpec]
    resource_types: frozenset[str]
    sensitive_fields: frozenset[str] = field(default_factory=frozenset)
    #: Sensitive fields that are a person's data (not secrets): sealed under the subject's key.
    personal_fields: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        actions: Iterable[ActionSpec],
        resource_types: Iterable[str],
        sensitive_fields: Iterable[str] = (),
        personal_fields: Iterable[str] = (),
    ) -> AuditCatalog:
        table: dict[str, ActionSpec] = {}
        for spec in (*CORE_ACTIONS, *actions):
            if spec.name in table and table[spec.name] != spec:
                raise ValueError(f"action {spec.name} is defined twice with different meanings")
            if spec.fail_closed and not spec.is_read:
                raise ValueError(f"{spec.name}: only read actions can be fail-closed")
            table[spec.name] = spec
        legacy: dict[str, str] = {}
        for spec in table.values():
            for old in spec.legacy_names:
                if old in legacy and legacy[old] != spec.name:
                    raise ValueError(f"legacy action {old} maps to {legacy[old]} and {spec.name}")
                legacy[old] = spec.name
        return cls(
            actions=MappingProxyType(table),
            resource_types=frozenset((*CORE_RESOURCE_TYPES, *resource_types)),
            sensitive_fields=frozenset(canonical_field(f) for f in sensitive_fields),
            personal_fields=frozenset(canonical_field(f) for f in personal_fields),
        )

    def action(self, name: str) -> ActionSpec:
        spec = self.actions.get(name)
        if spec is None:
            close = difflib.get_close_matches(str(name), list(self.actions), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see the audit catalog"
            raise AuditInputError(f"unknown audit action {name!r}", field="action", hint=hint)
        return spec

    def check_resource_type(self, name: str) -> str:
        if name not in self.resource_types:
            close = difflib.get_close_matches(str(name), sorted(self.resource_types), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see the audit catalog"
            raise AuditInputError(
                f"unknown resource type {name!r}", field="resource_type", hint=hint
            )
        return name

    def legacy_action(self, legacy_name: str) -> ActionSpec | None:
        for spec in self.actions.values():
            if legacy_name in spec.legacy_names:
                return spec
        return None

    def categories(self) -> dict[str, str]:
        return {name: spec.category for name, spec in self.actions.items()}

    def phi_actions(self) -> list[str]:
        return sorted(name for name, spec in self.actions.items() if spec.phi)
