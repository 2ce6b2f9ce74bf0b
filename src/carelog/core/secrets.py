"""Secrets from the environment, with a development fallback that survives restarts.

Production reads every key from an environment variable and refuses to start without it.
Development generates a key once and keeps it in the data directory (mode 0600), so data
protected with it (masked audit values, encrypted records) stays usable across restarts.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Literal

from carelog.core.errors import ConfigurationError
from carelog.core.settings import Settings

SecretField = Literal["audit_mask_key", "dev_token_key"]


def load_secret(
    settings: Settings, field: SecretField, filename: str, *, length: int = 32
) -> bytes:
    """A ``length``-byte key from the setting (base64), or the dev key file, or a new one."""
    variable = Settings.variable(field)
    value = getattr(settings, field)
    raw = value.get_secret_value() if value is not None else None
    if raw:
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError:
            raise ConfigurationError(
                "is not valid base64", field=variable, hint=f"use {length} random bytes, base64"
            ) from None
        if len(key) != length:
            raise ConfigurationError(
                f"must decode to {length} bytes, got {len(key)}", field=variable
            )
        return key
    if settings.production:
        raise ConfigurationError(
            "is required in production", field=variable, hint=f"{length} random bytes, base64"
        )
    path = Path(settings.data_dir) / filename
    if path.exists():
        key = base64.b64decode(path.read_text().strip())
        if len(key) == length:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(length)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode())
    return key
