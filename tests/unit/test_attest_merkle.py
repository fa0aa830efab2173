"""The attestation log's Merkle tree (``perpbox.deployer.merkle``) against RFC 9162 / RFC 6962's
published test vectors and against an independent implementation (``pymerkle``, tests only)."""

from __future__ import annotations

import hashlib
import random

import pytest
from pymerkle import InmemoryTree

from perpbox.deployer import merkle

# The eight leaves of the Certificate Transparency test vectors (google/certificate-transparency,
# merkle_tree_test.cc; the same set in transparency-dev/merkle's tests).
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
# the inclusion path of leaf 0 in the tree of 8, from the same vectors
CT_PATH_0_OF_8 = ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]


def _hashes(leaves: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(x) for x in leaves]


def _pymerkle_roots(leaves: list[bytes]) -> list[bytes]:
    """The root of every prefix, by pymerkle (index i: the tree of the first i + 1 leaves)."""
    tree = InmemoryTree(algorithm="sha256")
    out = []
    for leaf in leaves:
        tree.append_entry(leaf)
        out.append(tree.get_root())
    return out


def test_the_ct_test_vectors() -> None:
    hashes = _hashes(CT_LEAVES)
    assert merkle.root([]) == hashlib.sha256(b"").digest()  # §2.1.1: the empty tree
    assert merkle.root(hashes[:1]) == hashlib.sha256(b"\x00").digest()  # one empty leaf
    assert merkle.root(hashes).hex() == CT_ROOT_8
    assert [p.hex() for p in merkle.inclusion_proof(0, hashes)] == CT_PATH_0_OF_8


def test_every_root_matches_pymerkle() -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(rng.randint(0, 40)) for _ in range(70)]
    hashes = _hashes(leaves)
    for n, want in enumerate(_pymerkle_roots(leaves), start=1):
        assert merkle.root(hashes[:n]) == want, n


def test_a_lone_last_node_is_promoted_not_duplicated() -> None:
    """CVE-2012-2459: a tree that pairs its last node with a copy of itself gives [a, b, c] and
    [a, b, c, c] one root.  Here the root of three is H(01 ‖ H(01 ‖ a ‖ b) ‖ c)."""
    a, b, c = _hashes([b"a", b"b", b"c"])
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.root([a, b, c]) != merkle.root([a, b, c, c])


def test_inclusion_proofs_verify_and_nothing_else_does() -> None:
    """(A proof does not pin the tree's size on its own: a checkpoint signs size and root together.)"""
    rng = random.Random(11)
    leaves = [rng.randbytes(8) for _ in range(33)]
    hashes = _hashes(leaves)
    roots = _pymerkle_roots(leaves)
    for n in range(1, 34):
        for i in range(n):
            proof = merkle.inclusion_proof(i, hashes[:n])
            assert merkle.verify_inclusion(hashes[i], i, n, proof, roots[n - 1]), (i, n)
            if n > 1:
                assert not merkle.verify_inclusion(hashes[(i + 1) % n], i, n, proof, roots[n - 1])
                bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
                assert not merkle.verify_inclusion(hashes[i], i, n, bad, roots[n - 1])
    assert not merkle.verify_inclusion(hashes[0], 5, 5, [], roots[4])  # index outside the tree
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, hashes[:3])


def test_consistency_proofs_verify_and_a_rewritten_history_does_not() -> None:
    rng = random.Random(13)
    leaves = [rng.randbytes(8) for _ in range(33)]
    hashes = _hashes(leaves)
    roots = [merkle.EMPTY_ROOT, *_pymerkle_roots(leaves)]
    forged = list(hashes)
    forged[2] = merkle.leaf_hash(b"rewritten")
    for n in range(1, 34):
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(m, hashes[:n])
            assert merkle.verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 3 <= m < n:  # a log that rewrote record 2 after publishing the tree of m
                assert not merkle.verify_consistency(m, n, roots[m], merkle.root(forged[:n]), proof), (m, n)
            if 0 < m < n:
                assert not merkle.verify_consistency(m, n, roots[m], roots[n], proof[:-1]), (m, n)
    assert not merkle.verify_consistency(4, 3, roots[4], roots[3], [])
