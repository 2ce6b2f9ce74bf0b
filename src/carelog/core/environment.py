"""The process environment: the one module besides the settings that touches ``os.environ``.

:class:`EnvironmentSource` is where :class:`~carelog.core.settings.Settings` reads its
variables (the process environment, or the mapping given to ``Settings.from_env``);
:func:`child_environment` and :func:`export_for_workers` hand variables on to processes carelog
starts itself, so those paths do not read the environment on their own either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic_settings import EnvSettingsSource

SOURCE: ContextVar[Mapping[str, str] | None] = ContextVar("carelog_settings_source", default=None)


@contextmanager
def reading(environ: Mapping[str, str]) -> Iterator[None]:
    token = SOURCE.set(environ)
    try:
        yield
    finally:
        SOURCE.reset(token)


class EnvironmentSource(EnvSettingsSource):
    """``os.environ`` unless ``from_env`` was given a mapping: then that mapping alone."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = SOURCE.get()
        variables = os.environ if given is None else given
        return {name: value for name, value in variables.items() if value != ""}


def child_environment(*, drop_prefix: str = "CARELOG_", **variables: str) -> dict[str, str]:
    """This process's environment without carelog's own variables, plus ``variables``: what a
    child process (a benchmark's server, a worker) is started with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    env.update(variables)
    return env


def export_for_workers(**variables: str) -> None:
    """Set variables that worker processes forked from this one will read as their settings."""
    os.environ.update(variables)
