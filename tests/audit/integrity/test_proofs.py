"""Inclusion proofs of single events and consistency proofs between checkpoints."""

from __future__ import annotations

import base64

import orjson
import pytest
from integrity_env import Integrity
from typer.testing import CliRunner

from carelog.audit.integrity import (
    SignedCheckpoint,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from carelog.audit.integrity.merkle import inclusion_proof
from carelog.audit.integrity.proofs import ProofTree, consistency_for, proof_for_event
from carelog.cli import integrity_commands


def test_proof_tree_matches_the_reference_proofs() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(37)]
    tree = ProofTree(leaves)
    for size in (1, 2, 5, 16, 37):
        for index in range(size):
            assert tree.inclusion(index, size) == inclusion_proof(leaves, index, size)


async def test_event_proof_verifies_against_the_signed_checkpoint(integrity: Integrity) -> None:
    ids = integrity.add(7)
    await integrity.sealer.seal_once()
    ids += integrity.add(6, start=7)
    await integrity.sealer.seal_once()
    async with integrity.scopes.system_scope("system:test", integrity.org) as session:
        proof = await proof_for_event(
            session, integrity.org, ids[3], integrity.keyring.public_keys()
        )
        consistency = await consistency_for(session, integrity.org, 7, 13)
    signed = SignedCheckpoint.from_json_dict(proof["checkpoint"])
    assert integrity.keyring.verifying_keyring().verify(signed)
    assert proof["leaf_index"] == 3 and proof["tree_size"] == 13
    assert proof["event"]["id"] == str(ids[3]) and proof["key_id"] == "test-k1"
    canonical = base64.b64decode(proof["canonical"])
    assert orjson.loads(canonical) == proof["event"]
    path = [bytes.fromhex(p) for p in proof["inclusion_proof"]]
    assert verify_inclusion(leaf_hash(canonical), 3, 13, path, signed.checkpoint.root_hash)
    old = SignedCheckpoint.from_json_dict(consistency["old_checkpoint"]).checkpoint
    new = SignedCheckpoint.from_json_dict(consistency["new_checkpoint"]).checkpoint
    assert verify_consistency(
        7,
        13,
        old.root_hash,
        new.root_hash,
        [bytes.fromhex(p) for p in consistency["consistency_proof"]],
    )


async def test_proof_of_an_unsealed_or_altered_event_is_refused(integrity: Integrity) -> None:
    ids = integrity.add(3)
    async with integrity.scopes.system_scope("system:test", integrity.org) as session:
        with pytest.raises(LookupError, match="not sealed yet"):
            await proof_for_event(session, integrity.org, ids[0])
    await integrity.sealer.seal_once()
    integrity.tamper("UPDATE audit_logs SET action = 'Z' WHERE id = :id", id=ids[1])
    async with integrity.scopes.system_scope("system:test", integrity.org) as session:
        with pytest.raises(LookupError, match="does not verify"):
            await proof_for_event(session, integrity.org, ids[1])


def test_cli_proof_keys_seal_and_verify(integrity: Integrity) -> None:
    ids = integrity.add(4)
    runner = CliRunner()
    env = integrity.cli_env()
    sealed = runner.invoke(integrity_commands.app, ["seal"], env=env)
    assert sealed.exit_code == 0, sealed.output
    shown = runner.invoke(
        integrity_commands.app, ["proof", str(ids[2]), "--org", str(integrity.org)], env=env
    )
    assert shown.exit_code == 0, shown.output
    data = orjson.loads(shown.stdout)
    assert (
        data["leaf_index"] == 2 and data["public_key"] == integrity.keyring.public_keys()["test-k1"]
    )
    keys = runner.invoke(integrity_commands.app, ["keys"], env=env)
    assert orjson.loads(keys.stdout)["public_keys"] == integrity.keyring.public_keys()
    ok = runner.invoke(integrity_commands.app, ["verify", "--org", str(integrity.org)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "OK   org" in ok.stdout and "4 leaves" in ok.stdout
    integrity.tamper("DELETE FROM audit_logs WHERE id = :id", id=ids[1])
    bad = runner.invoke(integrity_commands.app, ["verify", "--org", str(integrity.org)], env=env)
    assert bad.exit_code == 1
    assert f"event {ids[1]} (seq 1) missing" in bad.stdout
    cons = runner.invoke(
        integrity_commands.app,
        ["consistency", "--org", str(integrity.org), "--from", "4", "--to", "4"],
        env=env,
    )
    assert cons.exit_code == 0 and orjson.loads(cons.stdout)["consistency_proof"] == []
