"""Medical records (PHI): encryption of record content at rest."""

from __future__ import annotations

from carelog.platform.records.crypto import (
    ENCRYPTION_METHOD,
    ENV_VARIABLE,
    RecordDecryptionError,
    RecordKeyring,
    Sealed,
)

__all__ = [
    "ENCRYPTION_METHOD",
    "ENV_VARIABLE",
    "RecordDecryptionError",
    "RecordKeyring",
    "Sealed",
]
