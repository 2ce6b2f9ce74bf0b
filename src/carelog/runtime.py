"""The composition root: every long-lived part of carelog, built from one ``Settings``.

A reader looking for "where does X come from" starts here. :class:`Runtime` holds the database
and its scopes, the audit catalog and service, the record keyring, the token verifier, the
checkpoint keys, the stream destinations and (while running) the sealer. The web app and every
CLI command that needs more than a database go through :func:`running`; the app's lifespan
calls :meth:`Runtime.started` directly because FastAPI owns that loop. Nothing else installs
the process-wide audit service.

Expensive or secret-bearing parts (keys, the token verifier) are built on first use, so a
command that never decrypts a record does not need the record keys; tests pass their own
parts to the constructor instead of patching the app afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carelog.audit.api import AuditService, installed_audit
from carelog.audit.catalog import AuditCatalog
from carelog.audit.context import TrustedProxies
from carelog.audit.leader import Leadership, leader_duties
from carelog.audit.setup import audit_mask_key, create_audit_service
from carelog.audit.streams.config import Destination, destinations_from_settings
from carelog.core.settings import Settings
from carelog.db.conninfo import libpq_conninfo
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.audit_catalog import build_catalog
from carelog.platform.auth.tokens import TokenMemo, TokenVerifier, verifier_from_settings
from carelog.platform.records.crypto import RecordKeyring
from carelog.platform.services import Services
from carelog.platform.subjects.identity import (
    SubjectDirectory,
    create_subject_directory,
    installed_subjects,
)

if TYPE_CHECKING:
    from carelog.audit.integrity.checkpoint import SigningKeyring, VerifyingKeyring
    from carelog.audit.integrity.sealer import Sealer


class Runtime:
    """The running program's parts (one per process; see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        database: Database | None = None,
        *,
        catalog: AuditCatalog | None = None,
        audit: AuditService | None = None,
        spool_dir: Path | None = None,
        token_verifier: TokenVerifier | None = None,
        record_keyring: RecordKeyring | None = None,
        signing_keyring: SigningKeyring | None = None,
        subject_directory: SubjectDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.database = database if database is not None else Database.open(settings)
        self.scopes = Scopes(self.database)
        self.catalog = catalog or (audit.catalog if audit is not None else build_catalog())
        self.audit = audit or create_audit_service(self.database, self.catalog, spool_dir=spool_dir)
        self.sealer: Sealer | None = None  # set while a background sealer runs
        self.leadership: Leadership | None = None  # set while competing for the leader lock
        # The last on-demand verification per organization (what the viewer shows).
        self.verifications: dict[uuid.UUID, dict[str, Any]] = {}
        # Parts given by the caller win over the ones built from settings on first use.
        for name, part in (
            ("token_verifier", token_verifier),
            ("record_keyring", record_keyring),
            ("signing_keyring", signing_keyring),
            ("subject_directory", subject_directory),
        ):
            if part is not None:
                self.__dict__[name] = part

    @classmethod
    def from_env(cls) -> Runtime:
        return cls(Settings.from_env())

    # ------------------------------------------------------------------ parts built on demand

    @cached_property
    def csrf_key(self) -> bytes:
        """The viewer's CSRF key, derived (HKDF) from the audit mask key so every worker of one
        deployment accepts the tokens the others issued; domain-separated from masking."""
        master = audit_mask_key(self.settings)
        return HKDF(
            algorithm=SHA256(), length=32, salt=None, info=b"carelog viewer csrf v1"
        ).derive(master)

    @cached_property
    def token_verifier(self) -> TokenVerifier:
        return verifier_from_settings(self.settings)

    @cached_property
    def token_memo(self) -> TokenMemo:
        return TokenMemo()

    @cached_property
    def record_keyring(self) -> RecordKeyring:
        return RecordKeyring.from_settings(self.settings)

    @cached_property
    def signing_keyring(self) -> SigningKeyring:
        # Imported here: a fault in the integrity modules then fails the integrity paths only.
        from carelog.audit.integrity.keys import load_signing_keyring

        return load_signing_keyring(self.settings)

    @cached_property
    def subject_directory(self) -> SubjectDirectory:
        return create_subject_directory(self.settings)

    @cached_property
    def verifying_keys(self) -> VerifyingKeyring:
        return self.signing_keyring.verifying_keyring()

    @cached_property
    def stream_destinations(self) -> list[Destination]:
        return destinations_from_settings(self.settings)

    @cached_property
    def trusted_proxies(self) -> TrustedProxies:
        return TrustedProxies.parse(self.settings.trusted_proxies)

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def started(self, *, sealer: bool = False) -> AsyncIterator[Runtime]:
        """Install and start the audit service (and the sealer) for the life of the block.

        On the way out the writer drains and stops, the previous audit service (if a caller
        had one) is back in place, and this loop's connections are disposed.
        """
        with installed_audit(self.audit), installed_subjects(self.subject_directory):
            await self.audit.start()
            try:
                if sealer:
                    # Several processes (carelog up --workers N) compete for one advisory lock;
                    # only its holder seals and streams (carelog.audit.leader).
                    conninfo = libpq_conninfo(self.database.system_url)
                    async with leader_duties(conninfo, self._lead) as leadership:
                        self.leadership = leadership
                        try:
                            yield self
                        finally:
                            self.leadership = None
                else:
                    yield self
            finally:
                await self.audit.stop()
                await self.database.dispose()

    @asynccontextmanager
    async def _lead(self) -> AsyncIterator[None]:
        """The leader's duties: the sealer, and the audit streams when destinations are set."""
        from carelog.audit.integrity.sealer import Sealer, start_sealer

        self.sealer = Sealer(self.scopes, self.signing_keyring)
        task = start_sealer(self.sealer, self.settings.audit_seal_interval)
        runner = None
        try:
            if self.stream_destinations:
                from carelog.audit.streams.runner import StreamRunner

                runner = StreamRunner(self.database, self.stream_destinations)
                await runner.start()
            yield
        finally:
            if runner is not None:
                await runner.stop()
            task.cancel()
            await _settled(task)
            self.sealer = None

    def close(self) -> None:
        """Release the database (stops the embedded server this process started)."""
        self.database.close()


async def _settled(task: asyncio.Task[object]) -> None:
    with suppress(asyncio.CancelledError):
        await task


@asynccontextmanager
async def running(
    settings: Settings | None = None, *, database: Database | None = None, sealer: bool = False
) -> AsyncIterator[Runtime]:
    """Build the runtime and run it for the block: the entry point of every command.

    With ``database`` the caller keeps ownership of it (it is disposed, not closed).
    """
    runtime = Runtime(
        settings or (database.settings if database else Settings.from_env()), database
    )
    try:
        async with runtime.started(sealer=sealer):
            yield runtime
    finally:
        if database is None:
            runtime.close()


@contextmanager
def opened(settings: Settings | None = None) -> Iterator[Runtime]:
    """The runtime without starting anything: for commands that only read (sync code)."""
    runtime = Runtime(settings or Settings.from_env())
    try:
        yield runtime
    finally:
        runtime.close()


def _conforms(runtime: Runtime) -> Services:
    return runtime  # mypy: the runtime offers everything the platform's endpoints use
