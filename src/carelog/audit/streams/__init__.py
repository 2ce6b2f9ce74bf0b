"""Audit log streams: every committed event, in order, at least once, to NATS and webhooks.

A stream reads behind the writer (:mod:`.reader`), keeps its own cursor per destination
(``audit_stream_cursors``) and resumes from it after restarts and outages (:mod:`.runner`).

Cursor design: one global position per destination, ``(txid, created_at, id)``, read through
``app.audit_stream_read`` (a SECURITY DEFINER function executable by the system role only). The
alternative, a cursor per (destination, organization) read through ``system_scope``, keeps the
system role's one-org-at-a-time rule but gives only a per-organization order, multiplies the
cursors by the number of organizations and needs an extra scan to discover which organizations
have new events. The function is narrow: it returns audit rows in stream order after a position
and below the transaction horizon, nothing else, and no other role may call it; the system role
still cannot read any organization's rows directly. The stream order is the commit-safe order
(transaction id, then time and id inside one transaction), which is what "in order" means for a
log written concurrently by many transactions.
"""

from __future__ import annotations

from carelog.audit.streams.base import DeliveryError, Position, Sink, StreamEvent
from carelog.audit.streams.config import Destination, destinations_from_settings, parse_destination
from carelog.audit.streams.runner import StreamRunner, StreamStatus, stream_status

__all__ = [
    "DeliveryError",
    "Destination",
    "Position",
    "Sink",
    "StreamEvent",
    "StreamRunner",
    "StreamStatus",
    "destinations_from_settings",
    "parse_destination",
    "stream_status",
]
