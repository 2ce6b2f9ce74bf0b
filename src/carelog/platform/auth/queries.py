"""The SQL of authentication: which organization a token's user acts in.

Both statements run in a unit opened for the user with no organization yet, so row-level
security shows only the user's own active memberships and their organizations: the token's
claims never widen what the look-up can see.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The user's active memberships, by WorkOS organization id (a token naming no organization
#: may act in the one organization the user belongs to, and is told the choices otherwise).
ACTIVE_MEMBERSHIPS = sa.text(
    "select o.id, o.workos_org_id from organizations o"
    " join user_org_memberships m on m.org_id = o.id"
    " where m.workos_user_id = :user_id and m.status = 'active'"
    " order by o.workos_org_id"
)
#: Our id of the organization a token names by its WorkOS id.
ORG_BY_WORKOS_ID = sa.text("select id from organizations where workos_org_id = :workos_org_id")
