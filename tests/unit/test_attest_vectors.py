"""The attestation log's formats against vectors published outside perpbox: Go's
``golang.org/x/mod/sumdb/note`` test vectors (note_test.go: TestNewSigner, TestNewVerifier, TestSign,
TestOpen), RFC 9162 roots by an independent implementation (``pymerkle``) and by a from-scratch
reading of §2.1.1, and the C2SP ``tlog-proof`` / ``tlog-checkpoint`` grammars, parsed here by code
written from the spec text, not by perpbox's own parsers or verifiers."""

from __future__ import annotations

import base64
import hashlib
import random
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pymerkle import InmemoryTree

from perpbox.deployer import merkle, note
from perpbox.deployer.attestlog import AttestError, AttestLog, prove, verify_bundle

# -- Go's sumdb/note vectors (golang.org/x/mod/sumdb/note/note_test.go) -----------------------------

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + "\n" + "\u2014 PeterNeumann " + GO_SIG + "\n"


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _spec_key_id(name: str, public_key: bytes) -> bytes:
    """c2sp.org/signed-note: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 (Ed25519) ‖ key)."""
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + public_key).digest()[:4]


def test_the_go_signer_key_parses_to_the_published_verifier_key() -> None:
    name, key = note.parse_signer_key(GO_SKEY)
    assert name == "PeterNeumann"
    assert note.verifier_key(name, key) == GO_VKEY
    # by the spec, without perpbox: the verifier key's public key is the seed's, its id the spec's hash
    pub = base64.b64decode(GO_VKEY.split("+")[2])
    assert pub[0] == 1 and _raw_public(key) == pub[1:]
    assert _spec_key_id("PeterNeumann", pub[1:]).hex() == "c74f20a3"
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert seed[0] == 1 and _raw_public(Ed25519PrivateKey.from_private_bytes(seed[1:])) == pub[1:]


def test_the_go_signer_key_round_trips() -> None:
    name, key = note.parse_signer_key(GO_SKEY)
    assert note.signer_key(name, key) == GO_SKEY
    assert note.parse_signer_key(GO_SKEY + "\n")[0] == "PeterNeumann"  # as read from a key file


def test_a_signer_key_round_trips_when_the_verifier_keys_base64_holds_a_plus() -> None:
    """Go's form is PRIVATE+KEY+<name>+<id hex>+<base64(0x01 ‖ seed)>: exactly five '+'-separated
    fields before the key's base64, whatever '+' the public key's own base64 holds."""
    seed = bytes([8]) * 32
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = _raw_public(key)
    assert "+" in base64.b64encode(b"\x01" + pub).decode()  # the case this test is for
    tagged = base64.b64encode(b"\x01" + seed).decode()
    want = f"PRIVATE+KEY+perpbox/xyz+{_spec_key_id('perpbox/xyz', pub).hex()}+{tagged}"
    assert note.signer_key("perpbox/xyz", key) == want
    name, parsed = note.parse_signer_key(note.signer_key("perpbox/xyz", key))
    assert (name, _raw_public(parsed)) == ("perpbox/xyz", pub)


def test_signing_reproduces_the_published_note_byte_for_byte() -> None:
    """Ed25519 is deterministic, so the signature of Go's TestSign is the only right one."""
    name, key = note.parse_signer_key(GO_SKEY)
    assert note.sign(GO_TEXT, name, key) == GO_NOTE
    # the signature line's first 4 bytes are the key id, the rest an Ed25519 signature of the text
    raw = base64.b64decode(GO_SIG)
    assert raw[:4].hex() == "c74f20a3" and len(raw) == 68
    pub = base64.b64decode(GO_VKEY.split("+")[2])[1:]
    Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], GO_TEXT.encode())


def test_the_published_note_opens() -> None:
    assert note.open_note(GO_NOTE, GO_VKEY) == GO_TEXT


def test_a_note_with_a_foreign_signature_first_still_opens() -> None:
    """signed-note: lines by keys the verifier does not know are skipped, not fatal."""
    foreign = "\u2014 EnochRoot " + base64.b64encode(bytes(68)).decode() + "\n"
    assert note.open_note(GO_TEXT + "\n" + foreign + GO_NOTE[len(GO_TEXT) + 1:], GO_VKEY) == GO_TEXT


def _change_char(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


@pytest.mark.parametrize("forged", [
    GO_NOTE.replace("problem,", "problem;"),                                  # the text
    GO_NOTE.replace("If you", "if you"),
    GO_NOTE.replace(GO_SIG, _change_char(GO_SIG, 30)),                        # the signature
    GO_NOTE.replace(GO_SIG, _change_char(GO_SIG, 70)),
    GO_NOTE.replace(GO_SIG, _change_char(GO_SIG, 2)),                         # the key id in it
    GO_NOTE.replace("PeterNeumann", "PeterNeumanm"),                           # the signer's name
    GO_NOTE.replace("\n\n", "\n"),                                             # no blank line
], ids=["text-comma", "text-case", "sig-30", "sig-70", "key-id", "name", "no-blank-line"])
def test_a_one_character_change_is_refused(forged: str) -> None:
    assert forged != GO_NOTE
    with pytest.raises(note.NoteError):
        note.open_note(forged, GO_VKEY)


def _manglings(key: str) -> list[str]:
    """Go's TestNewVerifier / TestNewSigner: every proper substring, and every byte plus one."""
    b = key.encode()
    out = {b[i:j].decode() for i in range(len(b) + 1) for j in range(i + 1, len(b) + 1) if (i, j) != (0, len(b))}
    for i in range(len(b)):
        out.add((b[:i] + bytes([b[i] + 1]) + b[i + 1:]).decode())
    return sorted(out)


def test_gos_manglings_of_the_verifier_key_are_refused() -> None:
    note.parse_verifier_key(GO_VKEY)
    bad = [*_manglings(GO_VKEY),
           # the last two of TestNewVerifier: a wrong-length key, an unknown algorithm (ids adjusted)
           "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
           "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]
    accepted = []
    for k in bad:
        try:
            note.parse_verifier_key(k)
        except note.NoteError:
            continue
        accepted.append(k)
    assert accepted == []


def test_gos_manglings_of_the_signer_key_are_refused() -> None:
    accepted = []
    for k in _manglings(GO_SKEY):
        try:
            note.parse_signer_key(k)
        except note.NoteError:
            continue
        accepted.append(k)
    assert accepted == []


# -- RFC 9162 roots ----------------------------------------------------------------------------------

def _mth(entries: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 read from the text: MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 ‖ d0),
    MTH(D[n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])), k the largest power of two < n."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(entries[:k]) + _mth(entries[k:])).digest()


def test_compact_range_matches_the_tree_root_pymerkle_and_the_rfc_at_every_size() -> None:
    rng = random.Random(9162)
    entries = [rng.randbytes(rng.randint(0, 48)) for _ in range(300)]
    hashes = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    reference = InmemoryTree(algorithm="sha256")
    compact = merkle.CompactRange()
    assert compact.size == 0 and compact.root() == hashlib.sha256(b"").digest()
    assert reference.get_root() == hashlib.sha256(b"").digest()
    for n in range(1, 301):
        compact.append(hashes[n - 1])
        reference.append_entry(entries[n - 1])
        want = reference.get_root()
        assert compact.size == n
        assert compact.root() == want, n
        assert merkle.root(hashes[:n]) == want, n
        if n <= 70 or n in (127, 128, 129, 255, 256, 257, 300):
            assert _mth(entries[:n]) == want, n


# -- C2SP tlog-proof and tlog-checkpoint, parsed from the spec text ------------------------------------

def _parse_tlog_proof(text: str) -> tuple[bytes | None, int, list[bytes], str]:
    """c2sp.org/tlog-proof@v1: the header line; an optional ``extra <base64>`` line; ``index N`` in
    decimal without leading zeros; one base64 hash per line; an empty line; the checkpoint verbatim."""
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    pos, extra = 1, None
    if lines[pos].startswith("extra "):
        extra = base64.b64decode(lines[pos][len("extra "):], validate=True)
        pos += 1
    m = re.fullmatch(r"index (0|[1-9][0-9]*)", lines[pos])
    assert m, lines[pos]
    index = int(m.group(1))
    pos += 1
    hashes = []
    while lines[pos] != "":
        h = base64.b64decode(lines[pos], validate=True)
        assert len(h) == 32 and base64.b64encode(h).decode() == lines[pos]  # canonical base64
        hashes.append(h)
        pos += 1
    return extra, index, hashes, "\n".join(lines[pos + 1:])


def _parse_checkpoint_note(signed: str) -> tuple[str, int, bytes, str, list[tuple[str, bytes]]]:
    """c2sp.org/tlog-checkpoint inside a c2sp.org/signed-note: origin, ASCII decimal size, base64
    root (32 bytes), then a blank line and ``— <name> <base64(key id ‖ signature)>`` lines."""
    body, sep, sigs = signed.partition("\n\n")
    assert sep and sigs.endswith("\n")
    lines = body.split("\n")
    origin, size, root = lines[0], lines[1], base64.b64decode(lines[2], validate=True)
    assert origin and re.fullmatch(r"0|[1-9][0-9]*", size) and len(root) == 32
    signatures = []
    for line in sigs[:-1].split("\n"):
        m = re.fullmatch(r"\u2014 (\S+) ([A-Za-z0-9+/=]+)", line)
        assert m, line
        signatures.append((m.group(1), base64.b64decode(m.group(2), validate=True)))
    return origin, int(size), root, body + "\n", signatures


def _root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 inclusion, from §2.1.1's recursive definition rather than §2.1.3.2's loop: the path
    lists siblings from the leaf up, so its last hash is the sibling at the top split."""
    if size == 1:
        assert not path
        return leaf
    assert path
    k = 1
    while k * 2 < size:
        k *= 2
    if index < k:
        return hashlib.sha256(b"\x01" + _root_from_path(leaf, index, k, path[:-1]) + path[-1]).digest()
    return hashlib.sha256(b"\x01" + path[-1] + _root_from_path(leaf, index - k, size - k, path[:-1])).digest()


def test_the_spec_example_parses_with_the_test_parser() -> None:
    """The example of c2sp.org/tlog-proof (its signatures elided there, so only the grammar)."""
    example = ("c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\nindex 73894\n"
               "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\nB95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
               "\nexample.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n"
               "\u2014 example.com/fancylog " + base64.b64encode(bytes(68)).decode() + "\n")
    extra, index, hashes, checkpoint = _parse_tlog_proof(example)
    assert (extra, index, len(hashes)) == (b"age-v1.2.1-darwin-arm64.tar.gz", 73894, 2)
    assert _parse_checkpoint_note(checkpoint)[:2] == ("example.com/fancylog", 109482)


SEED = bytes(range(100, 132))
RECORDS = 13
CHECKPOINT_AT = (6, 13)


def _line(i: int) -> bytes:
    """Record i's canonical bytes, written by hand: keys sorted, no spaces, the index added."""
    return b'{"coin":"xyz:SILVER","index":%d,"oracle":"32.105","time":%d}' % (i, 1700000000000 + i)


def _spec_vkey() -> str:
    """The verifier key of SEED by the signed-note spec: name+hex(key id)+base64(0x01 ‖ public key)."""
    pub = _raw_public(Ed25519PrivateKey.from_private_bytes(SEED))
    tagged = base64.b64encode(b"\x01" + pub).decode()
    return f"perpbox/xyz+{_spec_key_id('perpbox/xyz', pub).hex()}+{tagged}"


@pytest.fixture
def bundle_log(tmp_path: Path) -> Path:
    directory = tmp_path / "attest"
    log = AttestLog(directory, "xyz", Ed25519PrivateKey.from_private_bytes(SEED))
    try:
        for i in range(RECORDS):
            log.append({"time": 1700000000000 + i, "oracle": "32.105", "coin": "xyz:SILVER"})
            if i + 1 in CHECKPOINT_AT:
                log.checkpoint()
    finally:
        log.close()
    return directory


@pytest.mark.parametrize("with_record", [False, True])
def test_a_perpbox_bundle_follows_the_spec_and_verifies_from_scratch(bundle_log: Path, with_record: bool) -> None:
    pub = _raw_public(Ed25519PrivateKey.from_private_bytes(SEED))
    want_id = _spec_key_id("perpbox/xyz", pub)
    published = {p.read_text() for p in (bundle_log / "checkpoints").glob("*.checkpoint")}
    reference = InmemoryTree(algorithm="sha256")
    for i in range(RECORDS):
        reference.append_entry(_line(i))
    for i in range(RECORDS):
        extra, index, hashes, checkpoint = _parse_tlog_proof(prove(bundle_log, i, with_record=with_record))
        assert index == i
        assert extra == (_line(i) if with_record else None)
        assert checkpoint in published  # the checkpoint note verbatim
        origin, size, root, text, signatures = _parse_checkpoint_note(checkpoint)
        assert (origin, size) == ("perpbox/xyz", 6 if i < 6 else 13)  # the first checkpoint covering i
        assert root == _mth([_line(j) for j in range(size)])
        assert signatures and signatures[0][0] == "perpbox/xyz" and signatures[0][1][:4] == want_id
        Ed25519PublicKey.from_public_bytes(pub).verify(signatures[0][1][4:], text.encode())
        leaf = hashlib.sha256(b"\x00" + _line(i)).digest()
        assert _root_from_path(leaf, i, size, hashes) == root
        assert hashes == reference.prove_inclusion(i + 1, size).path[1:]  # pymerkle: 1-based, leaf first
        # and what the parse accepts, perpbox's verifier accepts too
        vkey = _spec_vkey()
        assert verify_bundle(prove(bundle_log, i, with_record=with_record), vkey, _line(i)).size == size


def test_the_published_verifier_key_is_in_the_spec_form(bundle_log: Path) -> None:
    assert (bundle_log / "attest.vkey").read_text() == _spec_vkey() + "\n"


def test_a_bundle_index_in_non_ascii_digits_is_refused(bundle_log: Path) -> None:
    """tlog-proof: ``index`` is an ASCII decimal.  Python's str.isdigit() and int() also take other
    scripts' digits (U+0663 ARABIC-INDIC DIGIT THREE is a digit, int() of it is 3), which would make
    a second encoding of the same bundle."""
    vkey = _spec_vkey()
    bundle = prove(bundle_log, 3)
    assert "\nindex 3\n" in bundle
    verify_bundle(bundle, vkey, _line(3))
    with pytest.raises(AttestError):
        verify_bundle(bundle.replace("\nindex 3\n", "\nindex \u0663\n"), vkey, _line(3))


def test_a_checkpoint_size_in_non_ascii_digits_is_refused() -> None:
    """tlog-checkpoint: the tree size is an ASCII decimal (Go's parser uses strconv.ParseUint)."""
    root = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert note.parse_checkpoint(f"perpbox/xyz\n16\n{root}\n")[1] == 16
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(f"perpbox/xyz\n\u0661\u0666\n{root}\n")


def test_the_c2sp_tlog_checkpoint_spec_example_parses() -> None:
    """The example checkpoint of c2sp.org/tlog-checkpoint: its text parses to the origin, size and
    root it shows, and its signature line is a 4-byte key id and a 64-byte Ed25519 signature.  (The
    spec publishes no key for it, so the signature itself cannot be checked; another key's
    verifier finds no signature of its own there.)"""
    import base64 as b64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from perpbox.deployer import note

    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    stamp = "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8="
    signed = text + "\n\u2014 example.com/behind-the-sofa " + stamp + "\n"
    origin, size, root = note.parse_checkpoint(text)
    assert (origin, size) == ("example.com/behind-the-sofa", 20852163) and len(root) == 32
    assert len(b64.b64decode(stamp)) == 4 + 64
    other = note.verifier_key("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    with pytest.raises(note.NoteError):
        note.open_note(signed, other)
