"""The ``integrity`` fixture; the helpers live in integrity_env.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from integrity_env import Integrity

from carelog.audit.integrity import SigningKeyring, generate_key
from carelog.audit.integrity.sealer import Sealer
from carelog.db.engine import Database
from carelog.db.session import Scopes
from world import build_world


@pytest.fixture
async def integrity(fresh_db: Database) -> AsyncIterator[Integrity]:
    world = build_world(fresh_db.sync_engine("admin"))
    scopes = Scopes(fresh_db)
    _key_id, seed = generate_key()
    keyring = SigningKeyring.from_seed(seed, "test-k1")
    orgs = []
    with fresh_db.sync_engine("admin").begin() as conn:
        for name in ("sealed-1", "sealed-2"):
            org = uuid.uuid4()
            conn.execute(
                sa.text(
                    "INSERT INTO organizations (id, workos_org_id, slug, name, type) "
                    "VALUES (:id, :w, :s, :n, 'clinic')"
                ),
                {"id": org, "w": f"org_{name}", "s": name, "n": name},
            )
            orgs.append(org)
    sealer = Sealer(scopes, keyring)
    env = Integrity(fresh_db, world, scopes, keyring, sealer, orgs[0], orgs[1], f"test-k1:{seed}")
    try:
        yield env
    finally:
        await fresh_db.dispose()
