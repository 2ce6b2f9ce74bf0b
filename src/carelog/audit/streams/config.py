"""Which destinations the audit log is streamed to, read from the environment.

``CARELOG_AUDIT_STREAMS`` is a comma-separated list of URLs:

- ``nats://host:port`` (or ``tls://``): a NATS JetStream server. Optional query parameters:
  ``stream`` (default ``CARELOG_AUDIT``, created if missing) and ``subject`` (the subject
  prefix, default ``carelog.audit``; each event goes to ``<subject>.<org_id>``).
- ``https://host/path``: a webhook receiving signed JSON batches. Plain ``http://`` is accepted
  for loopback hosts only (a local relay or a test receiver), never across a network.

``CARELOG_AUDIT_STREAM_WEBHOOK_SECRET`` is the HMAC key of the webhook signatures (required
when a webhook is configured). A destination's identity (its cursor) is its URL without
credentials, so a rotated password keeps the position; do not put secrets in the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings

StreamKind = Literal["nats", "webhook"]

STREAMS_VARIABLE = "CARELOG_AUDIT_STREAMS"
SECRET_VARIABLE = "CARELOG_AUDIT_STREAM_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
DEFAULT_NATS_STREAM = "CARELOG_AUDIT"
DEFAULT_NATS_SUBJECT = "carelog.audit"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class Destination:
    """One configured stream destination."""

    kind: StreamKind
    url: str  # as configured (may carry credentials: never shown or stored)
    name: str  # the URL without credentials: the cursor's key and what status shows
    nats_stream: str = DEFAULT_NATS_STREAM
    nats_subject: str = DEFAULT_NATS_SUBJECT
    webhook_secret: bytes | None = None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def parse_destination(url: str, *, webhook_secret: str | None = None) -> Destination:
    """One destination URL (see the module docstring for the accepted forms)."""
    url = url.strip()
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError(
            f"{_without_credentials(url)!r} has no host",
            field=STREAMS_VARIABLE,
            hint="e.g. nats://127.0.0.1:4222 or https://siem.example/hook",
        )
    name = _without_credentials(url)
    if parts.scheme in ("nats", "tls"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        stream = query.get("stream", DEFAULT_NATS_STREAM)
        subject = query.get("subject", DEFAULT_NATS_SUBJECT)
        if not _STREAM_NAME.match(stream) or not _SUBJECT.match(subject):
            raise ConfigurationError(
                f"{name!r}: invalid JetStream stream name or subject prefix",
                field=STREAMS_VARIABLE,
                hint="stream: letters, digits, _ and -; subject: dot-separated tokens",
            )
        return Destination("nats", url, name, nats_stream=stream, nats_subject=subject)
    if parts.scheme in ("https", "http"):
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ConfigurationError(
                f"{name!r}: audit events leave only over HTTPS",
                field=STREAMS_VARIABLE,
                hint="use https:// (plain http is accepted for loopback receivers only)",
            )
        if not webhook_secret:
            raise ConfigurationError(
                f"{name!r}: webhook destinations need a signing secret",
                field=SECRET_VARIABLE,
                hint=f"set {SECRET_VARIABLE} to a long random value shared with the receiver",
            )
        return Destination("webhook", url, name, webhook_secret=webhook_secret.encode())
    raise ConfigurationError(
        f"{name!r}: unsupported destination scheme {parts.scheme!r}",
        field=STREAMS_VARIABLE,
        hint="use nats://host:port or https://host/path",
    )


def destinations_from_settings(settings: Settings) -> list[Destination]:
    """The destinations of ``CARELOG_AUDIT_STREAMS`` (empty when unset)."""
    raw = settings.audit_streams
    configured = settings.audit_stream_webhook_secret
    secret = configured.get_secret_value() if configured is not None else None
    out: list[Destination] = []
    for item in raw.split(","):
        if item.strip():
            dest = parse_destination(item, webhook_secret=secret)
            if any(d.name == dest.name for d in out):
                raise ConfigurationError(
                    f"{dest.name!r} is configured twice", field=STREAMS_VARIABLE
                )
            out.append(dest)
    return out
