"""A realistic event mix for the audit benchmarks.

Writes carry ``changes`` (old and new values with unchanged fields that minimising drops, and
sensitive fields that masking hashes); metadata varies in keys, size and shape (flat mappings
take the no-round-trip path, nested ones, lists and sensitive keys take the scrub and JSON
round trip). Reads carry flat metadata only, as the request path's reads do. A benchmark whose
events are all alike and flat never exercises minimising, masking or serialisation, and so
measures a path no real caller takes.
"""

from __future__ import annotations

from typing import Any

# (action, resource_type, kind): kind says which changes and metadata the call carries.
MIX: tuple[tuple[str, str, str], ...] = (
    ("MEDICAL_RECORD_VIEWED", "medical_record", "read"),
    ("APPOINTMENT_VIEWED", "appointment", "read"),
    ("PROFILE_VIEWED", "profile", "read"),
    ("APPOINTMENT_CREATED", "appointment", "create"),
    ("MEDICAL_RECORD_CREATED", "medical_record", "record"),
    ("EVENT_TYPE_UPDATED", "event_type", "update"),
    ("PROFILE_UPDATED", "profile", "profile"),
    ("SCHEDULE_UPDATED", "schedule", "schedule"),
    ("PAYMENT_COMPLETED", "payment", "payment"),
    ("UNAUTHORIZED_ACCESS_ATTEMPT", "security", "security"),
    ("COMPLIANCE_REPORT_GENERATED", "compliance", "report"),
    ("APPOINTMENT_CANCELLED", "appointment", "update"),
)

_VIA = ("web", "api", "mobile", "webhook")
_TZ = ("Europe/Lisbon", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


def changes_for(kind: str, i: int) -> dict[str, Any] | None:
    """Old/new values of a write: some fields unchanged (minimised away), some sensitive."""
    if kind == "create":
        return {
            "new_values": {
                "status": "confirmed",
                "start_time": f"2026-12-{1 + i % 28:02d}T10:{i % 60:02d}:00+00:00",
                "duration_minutes": 30 + 15 * (i % 4),
                "guest_email": f"guest{i}@example.com",
                "guest_name": f"Guest {i}",
                "timezone": _TZ[i % len(_TZ)],
            }
        }
    if kind == "record":
        return {"new_values": {"content": f"note {i}: " + "x" * (40 + i % 200), "version": 1}}
    if kind == "update":
        return {
            "old_values": {
                "title": f"Session {i % 7}",
                "price": 5000,
                "active": True,
                "duration": 30,
                "notes": "old",
            },
            "new_values": {
                "title": f"Session {i % 7}",
                "price": 5000 + 500 * (i % 3),
                "active": i % 5 != 0,
                "duration": 30,
                "notes": f"new {i}",
            },
        }
    if kind == "profile":
        return {
            "old_values": {"headline": "Physio", "email": "a@example.com", "phone": "+351 1"},
            "new_values": {
                "headline": f"Physio {i % 9}",
                "email": f"u{i}@example.com",
                "phone": "+351 1",
            },
        }
    if kind == "schedule":
        days = [{"day": d, "start": "09:00", "end": f"{12 + (i + d) % 6}:00"} for d in range(5)]
        return {"old_values": {"availability": days[:3]}, "new_values": {"availability": days}}
    return None


def metadata_for(kind: str, i: int) -> dict[str, Any]:
    """Varied metadata: flat for reads, nested, lists and sensitive keys elsewhere."""
    if kind == "read":
        return {"via": _VIA[i % len(_VIA)], "page": i % 10, "fields": 4 + i % 7}
    if kind == "payment":
        return {
            "stripe": {
                "payment_intent": f"pi_{i:012d}",
                "amount": 1000 + i % 9000,
                "currency": "eur",
            },
            "via": "webhook",
        }
    if kind == "security":
        return {
            "reason": "not a member",
            "path": f"/api/appointments/{i}/records",
            "email": f"intruder{i}@example.net",
            "attempts": 1 + i % 5,
        }
    if kind == "report":
        return {
            "period": {"from": "2026-11-01", "to": "2026-11-30"},
            "sections": ["access", "changes", "exports"][: 1 + i % 3],
        }
    return {"via": _VIA[i % len(_VIA)], "request_ms": i % 250, "client": f"v{1 + i % 4}.2"}


def call_args(i: int) -> tuple[str, str, str, dict[str, Any] | None, dict[str, Any], Any]:
    """The i-th call of the mix: action, resource type and id, changes, metadata, subject."""
    action, resource_type, kind = MIX[i % len(MIX)]
    subject = f"user_patient_{i % 97}" if kind in ("read", "record", "create") else None
    return (action, resource_type, f"res-{i}", changes_for(kind, i), metadata_for(kind, i), subject)


__all__ = ["MIX", "call_args", "changes_for", "metadata_for"]
