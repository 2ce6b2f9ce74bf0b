"""`carelog dev token`: a development access token for trying the API with curl.

Signed with the local development key (``CARELOG_DEV_TOKEN_KEY`` or the key file in the data
directory), which only a non-production server accepts; the claims are those of a WorkOS
AuthKit token (``sub``, ``org_id``, ``role``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from carelog.core.settings import Settings
from carelog.platform.auth.tokens import DEV_ROLES, MAX_DEV_TTL, dev_signer

app = typer.Typer(help="Development helpers (refused in production).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Development helpers (keeps `dev` a group of commands)."""


@app.command()
def token(
    user: Annotated[str, typer.Option("--user", help="WorkOS user id (the token's sub).")],
    org: Annotated[str, typer.Option("--org", help="Organization id (UUID or WorkOS org id).")],
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(DEV_ROLES)}.")] = "member",
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=MAX_DEV_TTL, help="Lifetime in seconds.")
    ] = 3600,
    act: Annotated[
        str | None,
        typer.Option(
            "--act", help="Impersonate: the admin acting as --user (AuthKit's act claim)."
        ),
    ] = None,
) -> None:
    """Print a signed development token: curl -H "Authorization: Bearer $(carelog dev token …)"."""
    signer = dev_signer(Settings.from_env())
    typer.echo(signer.issue(user, org, role=role, ttl=ttl, act=act))
