"""Errors of the legacy audit import: each one is a single line a person can act on."""

from __future__ import annotations

from carelog.core.errors import CarelogError, DatabaseUnavailableError


class LegacySourceUnavailableError(DatabaseUnavailableError):
    """The legacy database could not be reached (exit code 3)."""


class LegacySourceShapeError(CarelogError):
    """The legacy database is reachable but its audit table is not the expected one."""

    exit_code = 2


class MappingFileError(CarelogError):
    """A ``--user-map`` / ``--org-map`` file is malformed; the message names ``file:line``."""

    exit_code = 2
