"""Tamper evidence for the audit log: RFC 6962 Merkle trees and signed, chained checkpoints.

The package face holds the pure parts (canonical bytes, Merkle trees, checkpoints and keys).
The database-facing parts each have one module: ``rows`` (stored row -> canonical bytes, the
one encoder), ``sealer``, ``verify`` (one pass: ``scan`` re-hashes on one or more workers,
``diagnose`` names a fault, ``chain`` checks checkpoints, roots and the sealer state),
``proofs`` and ``bundle``.
"""

from carelog.audit.integrity.canonical import (
    CANONICAL_VERSION,
    canonical_event_bytes,
    event_leaf_hash,
    format_timestamp,
)
from carelog.audit.integrity.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    SigningKeyring,
    VerifyingKeyring,
    derive_key_id,
    generate_key,
)
from carelog.audit.integrity.merkle import (
    EMPTY_ROOT,
    AccumulatorState,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "CANONICAL_VERSION",
    "EMPTY_ROOT",
    "AccumulatorState",
    "Checkpoint",
    "MerkleAccumulator",
    "SignedCheckpoint",
    "SigningKeyring",
    "VerifyingKeyring",
    "canonical_event_bytes",
    "consistency_proof",
    "derive_key_id",
    "event_leaf_hash",
    "format_timestamp",
    "generate_key",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]
