"""Crypto-shredding: personal values sealed under a per-subject data key, equality tokens from
the same key, keys wrapped by a rotating KEK, and what destroying a key leaves behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from audit_env import AuditEnv

from carelog.audit import audit_context, log_audit_event
from carelog.audit.sealing import ERASED_VALUE, open_event_values, open_sealed, parse_sealed
from carelog.audit.subject_keys import KekRing, SubjectKeyStore
from carelog.db.unit import observing_statements

SUBJECT = "subj_test_ana"
PERSONAL = {"guest_email": "ana@example.test", "guest_notes": "knee pain", "status": "booked"}


def rows(env: AuditEnv, where: str, **params: object) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    with env.db.sync_engine("admin").connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.text(f"select * from audit_logs where {where} order by created_at"), params
            )
        ]


@contextmanager
def system_statements(env: AuditEnv) -> Iterator[list[str]]:
    """Every statement a unit of work sends inside the block (the key store's among them)."""
    statements: list[str] = []
    with observing_statements(statements.append):
        yield statements


async def log(env: AuditEnv, subject: str | None, values: dict[str, Any], rid: str) -> None:
    with audit_context(actor_id="system:test", org_id=env.world.a.org_id):
        await log_audit_event(
            "APPOINTMENT_CREATED",
            "appointment",
            rid,
            {"new_values": values},
            {"note": "free text about the patient", "channel": "test"},
            data_subject=subject,
        )


async def test_personal_values_are_sealed_and_open_only_in_their_place(env: AuditEnv) -> None:
    org = env.world.a.org_id
    await log(env, SUBJECT, PERSONAL, "m1")
    await log(env, SUBJECT, PERSONAL, "m2")
    await log(env, "subj_test_other", PERSONAL, "m3")
    await log(env, None, PERSONAL, "m4")
    first, second, other, anonymous = rows(env, "resource_id in ('m1', 'm2', 'm3', 'm4')")
    dump = str([first, second, other, anonymous])
    assert "ana@example" not in dump and "knee" not in dump and "free text" not in dump
    assert first["new_values"]["status"] == "booked"  # not personal: kept as it is
    assert first["schema_version"] == 2
    store = env.service.subject_keys
    assert store is not None
    key = await store.get(org, SUBJECT, create=False)
    assert key is not None
    opened = open_event_values(first["new_values"], key, org, first["id"], "/n")
    assert opened == PERSONAL
    meta = open_event_values(first["metadata"], key, org, first["id"], "/m")
    assert meta["note"] == "free text about the patient"
    # Equality tokens: equal for equal values of one subject, unrelated across subjects.
    tok = [parse_sealed(r["new_values"]["guest_email"]).equality_token for r in (first, second)]
    assert tok[0] == tok[1]
    assert parse_sealed(other["new_values"]["guest_email"]).equality_token != tok[0]
    # A sealed value does not open in another event or field.
    with pytest.raises(ValueError):
        open_sealed(first["new_values"]["guest_email"], key, org, second["id"], "/n/guest_email")
    with pytest.raises(ValueError):
        open_sealed(first["new_values"]["guest_email"], key, org, first["id"], "/n/guest_notes")
    # No subject: the schema-1 keyed hash, as before.
    assert anonymous["new_values"]["guest_email"].startswith("masked:hmac-sha256:")


async def test_destroyed_key_erases_values_and_later_events_store_none(env: AuditEnv) -> None:
    org = env.world.a.org_id
    await log(env, SUBJECT, PERSONAL, "m1")
    store = env.service.subject_keys
    assert store is not None
    async with env.scopes.system_scope("system:test", org) as session:
        state = await SubjectKeyStore.destroy(session, org, SUBJECT)
    assert state is not None and state.destroyed
    assert await store.get(org, SUBJECT) is None  # never re-created once destroyed
    await log(env, SUBJECT, PERSONAL, "m2")
    before, after = rows(env, "resource_id in ('m1', 'm2')")
    shown = open_event_values(before["new_values"], None, org, before["id"], "/n")
    assert shown == {"guest_email": "[erased]", "guest_notes": "[erased]", "status": "booked"}
    assert after["new_values"]["guest_email"] == ERASED_VALUE
    assert "ana@example" not in str(after)


async def test_data_keys_rotate_with_the_kek(env: AuditEnv) -> None:
    org = env.world.a.org_id
    store = env.service.subject_keys
    assert store is not None
    await log(env, SUBJECT, PERSONAL, "m1")
    original = await store.get(org, SUBJECT, create=False)
    assert original is not None
    new_kek = KekRing.generate("kek-2027")
    both = KekRing([("kek-2027", new_kek._keys["kek-2027"]), *store.keks._keys.items()])
    rotated = SubjectKeyStore(env.scopes, both)
    assert await rotated.rewrap(org) == 1
    assert await rotated.rewrap(org) == 0
    only_new = SubjectKeyStore(env.scopes, new_kek)
    again = await only_new.get(org, SUBJECT, create=False)
    assert again is not None and again.data_key == original.data_key
    [row] = rows(env, "resource_id = 'm1'")
    assert open_event_values(row["new_values"], again, org, row["id"], "/n") == PERSONAL


@pytest.fixture
def env(audit_env: AuditEnv) -> AuditEnv:
    return audit_env


def test_kek_ring_rejects_bad_input() -> None:
    from carelog.core.errors import ConfigurationError

    for text in ("nokey", "k1:not-base64!", "k1:" + "QUFB", ""):
        with pytest.raises(ConfigurationError):
            KekRing.parse(text)
    ring = KekRing.generate()
    assert repr(ring) == "KekRing(active='kek-dev', key_ids=['kek-dev'])"  # no key bytes


async def test_a_found_key_is_served_from_memory_until_it_is_destroyed(
    env: AuditEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second lookup of the same key costs no statement; destroying it (any store of this
    process) forgets it at once; a destruction by another process is seen once the cache
    entry expires (here: at once, the cache window set to zero)."""
    import sqlalchemy as sa

    from carelog.audit import subject_keys

    org = env.world.a.org_id
    store = env.service.subject_keys
    assert store is not None
    first = await store.get(org, SUBJECT)
    with system_statements(env) as statements:
        assert await store.get(org, SUBJECT) == first
    assert statements == []

    other = SubjectKeyStore(env.scopes, store.keks)  # e.g. the viewer's store, same process
    async with env.scopes.system_scope("system:test", org) as session:
        await SubjectKeyStore.destroy(session, org, SUBJECT)
    assert await store.get(org, SUBJECT) is None
    assert await other.get(org, SUBJECT) is None

    await store.get(org, "user_patient_elsewhere")  # cached, then destroyed by "another process"
    with env.db.sync_engine("admin").begin() as conn:
        conn.execute(
            sa.text(
                "update audit_subject_keys set wrapped_key = null, destroyed_at = now()"
                " where org_id = :o and subject_id = 'user_patient_elsewhere'"
            ),
            {"o": org},
        )
    monkeypatch.setattr(subject_keys, "CACHE_SECONDS", 0.0)
    assert await store.get(org, "user_patient_elsewhere") is None


async def test_concurrent_events_about_one_subject_share_one_key_read(env: AuditEnv) -> None:
    """Fifty concurrent look-ups of a subject nobody has a key for yet: one key is created,
    by one read of the store, and every caller gets that same key."""
    import asyncio

    org = env.world.a.org_id
    store = env.service.subject_keys
    assert store is not None
    with system_statements(env) as statements:
        keys = await asyncio.gather(*(store.get(org, "user_patient_burst") for _ in range(50)))
    assert len({k.key_id for k in keys if k is not None}) == 1 and None not in keys
    assert sum("insert into audit_subject_keys" in s for s in statements) == 1
