"""Who the patient of a booking is, as a data subject of the organization.

Every booking names a subject, so every event about the patient's data (the booking, records
written and read, payments) carries the same ``data_subject_id`` and their access report is
complete, anonymous guests included. In ``workos`` mode the subject is the WorkOS user of the
guest's e-mail (found, or created through the official SDK); otherwise it is a carelog id
(``subj_…``) minted once per organization and normalised e-mail.

The e-mail itself is not kept here: ``data_subjects.email_token`` is a keyed hash of it, so the
table links bookings to a subject without becoming another copy of the address. Erasure clears
the token, after which the same address starts a new, unrelated subject.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from carelog.core.ids import uuid7
from carelog.core.settings import Settings, WorkOSSettings
from carelog.db.unit import Unit
from carelog.platform.subjects import queries

SUBJECT_PREFIX = "subj_"


def normalise_email(email: str) -> str:
    """What makes two spellings the same mailbox here: surrounding space and letter case."""
    return email.strip().lower()


class GuestUsers(Protocol):
    """The identity provider's user directory (WorkOS in production)."""

    async def user_for(self, email: str, name: str) -> str: ...


class WorkOSGuestUsers:
    """Guest users in WorkOS through the official SDK: the existing user, or a new one."""

    def __init__(self, workos: WorkOSSettings) -> None:
        from workos import AsyncWorkOSClient

        self._client = AsyncWorkOSClient(
            api_key=workos.api_key,
            client_id=workos.client_id,
            base_url=workos.api_base,
            max_retries=1,
            request_timeout=10,
        )

    async def user_for(self, email: str, name: str) -> str:
        users = self._client.user_management
        page = await users.list_users(email=email, limit=1)
        if page.data:
            return str(page.data[0].id)
        first, _, last = name.strip().partition(" ")
        created = await users.create_user(
            email=email, first_name=first or None, last_name=last or None
        )
        return str(created.id)


@dataclass
class SubjectDirectory:
    """Resolves a guest's e-mail to the org's subject id (idempotent, race-free)."""

    token_key: bytes
    guests: GuestUsers | None = None

    def email_token(self, org_id: uuid.UUID, email: str) -> str:
        message = f"carelog.subject-email.v1|{org_id}|{normalise_email(email)}".encode()
        return hmac.new(self.token_key, message, hashlib.sha256).hexdigest()

    async def find(self, session: Unit, org_id: uuid.UUID, email: str) -> str | None:
        found: str | None = await queries.scalar(
            session,
            queries.SUBJECT_BY_EMAIL_TOKEN,
            org_id=org_id,
            email_token=self.email_token(org_id, email),
        )
        return found

    async def resolve(
        self,
        session: Unit,
        org_id: uuid.UUID,
        email: str,
        name: str,
        *,
        workos_user_id: str | None = None,
    ) -> str:
        """The subject id for this guest in ``org_id`` (a system-scope session of that org)."""
        existing = await self.find(session, org_id, email)
        if existing is not None:
            return existing
        user = workos_user_id
        if user is None and self.guests is not None:
            user = await self.guests.user_for(normalise_email(email), name)
        subject = user or f"{SUBJECT_PREFIX}{uuid7().hex}"
        inserted: str | None = await queries.scalar(
            session,
            queries.INSERT_SUBJECT,
            org_id=org_id,
            subject_id=subject,
            kind="carelog" if user is None else "workos",
            email_token=self.email_token(org_id, email),
            workos_user_id=user,
        )
        if inserted is not None:
            return inserted
        # A concurrent booking of the same guest won the insert: use its subject.
        again = await self.find(session, org_id, email)
        if again is None:  # the WorkOS user is already a subject under another address
            return subject
        return again


_directory: SubjectDirectory | None = None


@contextmanager
def installed_subjects(directory: SubjectDirectory) -> Iterator[SubjectDirectory]:
    """Install ``directory`` for the block, then put the previous one back (the runtime)."""
    global _directory
    previous, _directory = _directory, directory
    try:
        yield directory
    finally:
        _directory = previous


def subject_directory() -> SubjectDirectory:
    if _directory is None:
        from carelog.core.errors import ConfigurationError

        raise ConfigurationError(
            "the subject directory is not configured",
            hint="run inside carelog.runtime.Runtime.started (the app and the CLI do)",
        )
    return _directory


def create_subject_directory(settings: Settings) -> SubjectDirectory:
    """From settings: the index key derives from the audit mask key; WorkOS in workos mode."""
    from carelog.audit.setup import audit_mask_key
    from carelog.platform.auth.tokens import auth_mode

    mask_key = audit_mask_key(settings)
    token_key = hmac.new(mask_key, b"carelog.subject-email-index", hashlib.sha256).digest()
    workos = settings.workos
    workos_mode = auth_mode(settings) == "workos" and workos.api_key is not None
    guests = WorkOSGuestUsers(workos) if workos_mode else None
    return SubjectDirectory(token_key, guests)


async def backfill_meetings(session: Unit, directory: SubjectDirectory, org_id: uuid.UUID) -> int:
    """Give meetings booked before subjects existed (migration 0009) their subject.

    Anonymous bookings had no subject id; their e-mail is still in the meeting, so the subject
    is resolved exactly as a new booking would be. Audit events written back then keep their
    empty ``data_subject_id``: rewriting them would break their leaves (docs/erasure.md).
    """
    rows = await queries.rows(session, queries.LOCK_MEETINGS_WITHOUT_SUBJECT, org_id=org_id)
    for r in rows:
        subject = await directory.resolve(session, org_id, r.guest_email, r.guest_name)
        await session.execute(
            queries.SET_MEETING_SUBJECT,
            {"subject_id": subject, "org_id": org_id, "meeting_id": r.id},
        )
    return len(rows)
