"""Errors that carry a message meant for a person.

Every failure a user can cause (bad configuration, bad input, an unreachable server) is raised as
a :class:`CarelogError` so the CLI and the web layer can print one clear line instead of a
traceback. ``hint`` says how to fix it; ``field`` names the offending input when there is one.
"""

from __future__ import annotations


class CarelogError(Exception):
    """A failure with a human-readable explanation and, ideally, a fix."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} ({self.hint})" if self.hint else text


class ConfigurationError(CarelogError):
    """The environment or configuration is wrong; nothing was done."""

    exit_code = 2


class DatabaseUnavailableError(CarelogError):
    """PostgreSQL could not be reached or refused the connection."""

    exit_code = 3
