"""What the platform's endpoints need from the running program, and how they get it.

The composition root (:mod:`carelog.runtime`) builds every long-lived service once and puts
the one :class:`~carelog.runtime.Runtime` on ``app.state.runtime``. The platform sits below
that module in the layers, so it names the services it uses by this protocol instead of
importing the class; mypy checks that ``Runtime`` satisfies it. FastAPI dependencies below are
the only readers of ``app.state``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Request

from carelog.audit.api import AuditService
from carelog.audit.catalog import AuditCatalog
from carelog.core.settings import Settings
from carelog.db.engine import Database
from carelog.db.session import Scopes
from carelog.platform.auth.tokens import TokenMemo, TokenVerifier
from carelog.platform.records.crypto import RecordKeyring

if TYPE_CHECKING:
    from carelog.audit.integrity.checkpoint import SigningKeyring, VerifyingKeyring
    from carelog.platform.subjects.identity import SubjectDirectory


class Services(Protocol):
    """The services a request can reach (see :class:`carelog.runtime.Runtime`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def database(self) -> Database: ...
    @property
    def scopes(self) -> Scopes: ...
    @property
    def catalog(self) -> AuditCatalog: ...
    @property
    def csrf_key(self) -> bytes: ...
    @property
    def audit(self) -> AuditService: ...
    @property
    def token_verifier(self) -> TokenVerifier: ...
    @property
    def token_memo(self) -> TokenMemo: ...
    @property
    def record_keyring(self) -> RecordKeyring: ...
    @property
    def verifying_keys(self) -> VerifyingKeyring: ...
    @property
    def signing_keyring(self) -> SigningKeyring: ...
    @property
    def subject_directory(self) -> SubjectDirectory: ...
    @property
    def verifications(self) -> dict[uuid.UUID, dict[str, Any]]: ...


def services(request: Request) -> Services:
    """FastAPI dependency: the runtime the app was created with."""
    runtime: Services = request.app.state.runtime
    return runtime
