"""verify_org against tampering done directly in SQL as a superuser: each fault is found and
the right event (or checkpoint) is named."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from integrity_env import Integrity, make_event

from carelog.audit.integrity import SigningKeyring, generate_key


async def sealed(integrity: Integrity, n: int = 30, batches: int = 3) -> list:
    ids = []
    per = n // batches
    for b in range(batches):
        ids += integrity.add(per, start=b * per)
        await integrity.sealer.seal_once()
    return ids


async def test_intact_log_verifies_and_counts(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    report = await integrity.verify()
    assert report.ok, report.problems
    assert (report.leaves, report.events_checked, report.checkpoints) == (len(ids), len(ids), 3)
    assert (report.signatures, report.links, report.roots) == (3, 3, 3)
    # the other org is independent and empty
    assert (await integrity.verify(integrity.other_org)).ok


async def test_changed_field_names_the_event(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper("UPDATE audit_logs SET action = 'PROFILE_UPDATED' WHERE id = :id", id=ids[17])
    report = await integrity.verify()
    assert not report.ok
    first = report.first_problem
    assert first is not None and first.event_id == str(ids[17]) and first.seq == 17
    assert f"event {ids[17]} (seq 17) altered: leaf hash mismatch" in first.message


async def test_changed_jsonb_number_is_detected(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper(
        "UPDATE audit_logs SET metadata = jsonb_set(metadata, '{ratio}', '1.50') WHERE id = :id",
        id=ids[3],
    )
    first = (await integrity.verify()).first_problem
    assert first is not None and first.event_id == str(ids[3]) and first.kind == "altered"


async def test_deleted_event(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper("DELETE FROM audit_logs WHERE id = :id", id=ids[9])
    first = (await integrity.verify()).first_problem
    assert first is not None and first.kind == "missing" and first.event_id == str(ids[9])
    assert "(seq 9) missing" in first.message


async def test_forged_event_in_the_past(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    # below the sealer's horizon (an old txid): it sorts among the sealed events
    old_txid = integrity.scalar("SELECT txid FROM audit_logs WHERE id = :id", id=ids[5])
    forged = make_event(integrity.org, 5, resource_id="forged-1")
    integrity.insert([forged], txid=old_txid)
    first = (await integrity.verify()).first_problem
    assert first is not None and first.event_id == str(forged["id"])
    assert "inserted/forged or unsealed" in first.message
    # a forged event with a fresh txid but an old created_at: unsealed beyond the window
    integrity.tamper("DELETE FROM audit_logs WHERE id = :id", id=forged["id"])
    late = make_event(integrity.org, 99, resource_id="forged-2")
    integrity.insert([late])
    report = await integrity.verify()
    assert report.first_problem is not None
    assert report.first_problem.event_id == str(late["id"])
    assert "older than the sealing window" in report.first_problem.message


async def test_duplicated_event_id(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    copy = make_event(integrity.org, 4, id=ids[4])
    copy["created_at"] = copy["created_at"] + timedelta(milliseconds=1)
    integrity.insert([copy])
    first = (await integrity.verify()).first_problem
    assert first is not None and first.kind == "duplicated" and first.event_id == str(ids[4])


async def test_swapped_seals_order(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper(
        "UPDATE audit_seals SET seq = 1000000 WHERE org_id = :org AND seq = 12",
        "UPDATE audit_seals SET seq = 12 WHERE org_id = :org AND seq = 13",
        "UPDATE audit_seals SET seq = 13 WHERE org_id = :org AND seq = 1000000",
        org=integrity.org,
    )
    report = await integrity.verify()
    first = report.first_problem
    assert first is not None and first.kind == "order" and first.seq == 12
    assert str(ids[13]) in first.message and str(ids[12]) in first.message
    assert any("root hash does not match" in p.message for p in report.problems)


async def test_swapped_created_at(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper(
        "UPDATE audit_logs a SET created_at = b.created_at FROM audit_logs b "
        "WHERE (a.id, b.id) IN ((:x, :y), (:y, :x))",
        x=ids[20],
        y=ids[21],
    )
    first = (await integrity.verify()).first_problem
    assert first is not None and first.kind == "altered" and first.event_id == str(ids[20])


async def test_replaced_checkpoint(integrity: Integrity) -> None:
    await sealed(integrity)
    other = SigningKeyring.from_seed(generate_key()[1], "test-k1")  # same id, other key
    from carelog.audit.integrity import Checkpoint

    row = (
        integrity.admin()
        .connect()
        .execute(
            sa.text("SELECT * FROM audit_checkpoints WHERE org_id = :o AND tree_size = 20"),
            {"o": integrity.org},
        )
        .mappings()
        .one()
    )
    fake = other.sign(
        Checkpoint(
            str(integrity.org),
            20,
            bytes(32),
            row["issued_at"],
            bytes(row["previous_hash"]),
            "test-k1",
        )
    )
    integrity.tamper(
        "UPDATE audit_checkpoints SET root_hash = :root, signature = :sig, checkpoint_hash = :h "
        "WHERE org_id = :org AND tree_size = 20",
        root=bytes(32),
        sig=fake.signature,
        h=fake.checkpoint_hash(),
        org=integrity.org,
    )
    report = await integrity.verify()
    messages = [p.message for p in report.problems]
    assert report.first_problem is not None and report.first_problem.tree_size == 20
    assert any("tree size 20 replaced: bad signature" in m for m in messages)
    assert any("tree size 20: root hash does not match" in m for m in messages)
    assert any("tree size 30: previous_hash does not link" in m for m in messages)


async def test_truncated_tail_beyond_the_sealing_window(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    # The attacker removes the last checkpoint and its leaves; the events stay (older than the
    # sealing window) and the sealer's state still remembers the larger tree.
    integrity.tamper(
        "DELETE FROM audit_checkpoints WHERE org_id = :org AND tree_size = 30",
        "DELETE FROM audit_seals WHERE org_id = :org AND seq >= 20",
        org=integrity.org,
    )
    report = await integrity.verify(window=timedelta(seconds=0))
    assert not report.ok
    messages = [p.message for p in report.problems]
    assert any("the sealer sealed 30 leaves but 20 seals remain" in m for m in messages)
    unsealed = [p for p in report.problems if p.kind == "unsealed"]
    assert unsealed and unsealed[0].event_id == str(ids[20])
    # also with the state rolled back: the orphaned events are still named
    integrity.tamper(
        "UPDATE audit_seal_state s SET tree_size = 20, frontier = '{}' WHERE org_id = :org",
        org=integrity.org,
    )
    report = await integrity.verify(window=timedelta(seconds=0))
    assert next(p for p in report.problems if p.kind == "unsealed").event_id == str(ids[20])


async def test_purged_events_still_verify(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    with integrity.admin().begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text("DELETE FROM audit_logs WHERE id = ANY(:ids)"), {"ids": ids[:5]})
        conn.execute(
            sa.text("UPDATE audit_seals SET purged = true WHERE event_id = ANY(:ids)"),
            {"ids": ids[:5]},
        )
    report = await integrity.verify()
    assert report.ok, report.problems
    assert (report.purged, report.events_checked, report.roots) == (5, 25, 3)


async def test_since_rehashes_only_newer_events(integrity: Integrity) -> None:
    ids = await sealed(integrity)
    integrity.tamper("UPDATE audit_logs SET action = 'X' WHERE id = :id", id=ids[2])
    from integrity_env import BASE

    report = await integrity.verify(since=BASE + timedelta(seconds=10))
    assert report.ok and report.events_checked == 20 and report.skipped_before_since == 10
    assert not (await integrity.verify()).ok


async def test_org_admin_session_can_verify(integrity: Integrity) -> None:
    """The endpoint's path: an org admin's app-role session reads its org's log and seals."""
    from carelog.audit.integrity.verify import verify_org

    await sealed(integrity, 12, 2)
    org, owner = integrity.org, integrity.world.a.owner
    with integrity.admin().begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO user_org_memberships (workos_user_id, org_id, role) "
                "VALUES (:u, :o, 'owner')"
            ),
            {"u": owner, "o": org},
        )
    async with integrity.scopes.org_scope(owner, org) as session:
        report = await verify_org(session, org, integrity.keyring.verifying_keyring())
    assert report.ok, report.problems
    assert (report.leaves, report.events_checked, report.checkpoints) == (12, 12, 2)
