"""Where the checkpoint signing keys and the sealing cadence come from.

``CARELOG_AUDIT_SIGNING_KEYS`` = ``"kid:BASE64SEED,kid2:BASE64SEED"``: the first key signs, the
rest are retired (public halves kept so old checkpoints verify). Outside production, a missing
variable means a development key generated once and kept in the data directory (mode 0600),
like the other development secrets.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from carelog.audit.integrity.checkpoint import SigningKeyring, generate_key
from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings

SIGNING_KEYS_VARIABLE = "CARELOG_AUDIT_SIGNING_KEYS"
SEAL_INTERVAL_VARIABLE = "CARELOG_AUDIT_SEAL_INTERVAL"
KEY_FILE_NAME = "audit-signing-keys"
DEFAULT_SEAL_INTERVAL = 5.0


def _parse(text: str, source: str) -> SigningKeyring:
    try:
        return SigningKeyring.from_env_value(text)
    except ValueError as exc:
        raise ConfigurationError(
            str(exc), field=source, hint="expected 'kid:BASE64SEED,...' (32-byte Ed25519 seeds)"
        ) from None


def load_signing_keyring(settings: Settings) -> SigningKeyring:
    """The variable, or (not in production) the development key file, created if missing."""
    secret = settings.audit_signing_keys
    text = secret.get_secret_value().strip() if secret is not None else ""
    if text:
        return _parse(text, SIGNING_KEYS_VARIABLE)
    if settings.production:
        raise ConfigurationError(
            "production needs audit checkpoint signing keys",
            field=SIGNING_KEYS_VARIABLE,
            hint="generate one with `carelog audit keys --generate`",
        )
    return _dev_keyring(Path(settings.data_dir) / KEY_FILE_NAME)


def _dev_keyring(path: Path) -> SigningKeyring:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                "the audit signing key file is readable by other users",
                field=str(path),
                hint=f"run: chmod 600 {path}",
            ) from None
        return _parse(path.read_text(encoding="ascii"), str(path))
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the development signing key file: {exc.strerror}", field=str(path)
        ) from exc
    key_id, seed = generate_key()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{key_id}:{seed}\n")
    return SigningKeyring.from_seed(seed, key_id)


def seal_interval(settings: Settings) -> float:
    """Seconds between sealing passes (``CARELOG_AUDIT_SEAL_INTERVAL``, checked by Settings)."""
    return settings.audit_seal_interval
