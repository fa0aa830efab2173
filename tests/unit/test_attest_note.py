"""Signed notes and checkpoints in the C2SP formats (``perpbox.deployer.note``)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from perpbox.deployer import note

SEED = bytes(range(32))  # a fixed key, so the verifier key below is a fixed string


def _key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def test_the_verifier_key_is_name_id_and_algorithm_tagged_key() -> None:
    key = _key()
    pub = note.public_bytes(key)
    # the id by the format's definition: SHA-256 of name, newline, 0x01, key; its first 4 bytes
    want_id = hashlib.sha256(b"perpbox/xyz\n\x01" + pub).digest()[:4].hex()
    vkey = note.verifier_key("perpbox/xyz", key)
    tagged = base64.b64encode(b"\x01" + pub).decode()  # 0x01: Ed25519
    assert vkey == f"perpbox/xyz+{want_id}+{tagged}"
    name, kid, parsed = note.parse_verifier_key(vkey)
    assert (name, kid.hex(), note.public_bytes(parsed)) == ("perpbox/xyz", want_id, pub)
    tampered = vkey[:-6] + ("A" if vkey[-6] != "A" else "B") + vkey[-5:]
    with pytest.raises(note.NoteError):
        note.parse_verifier_key(tampered)  # the id no longer matches the key


def test_a_checkpoint_is_signed_opened_and_parsed() -> None:
    key = _key()
    root = hashlib.sha256(b"\x00").digest()
    text = note.checkpoint_text("perpbox/xyz", 1, root)
    assert text == f"perpbox/xyz\n1\n{base64.b64encode(root).decode()}\n"
    signed = note.sign(text, "perpbox/xyz", key)
    body, sig_line = signed.split("\n\n")
    assert body + "\n" == text and sig_line.startswith("\u2014 perpbox/xyz ")
    raw = base64.b64decode(sig_line.split(" ")[2])
    assert len(raw) == 4 + 64  # key id, then the Ed25519 signature over the text
    _key().public_key().verify(raw[4:], text.encode())
    vkey = note.verifier_key("perpbox/xyz", key)
    assert note.open_note(signed, vkey) == text
    assert note.parse_checkpoint(note.open_note(signed, vkey)) == ("perpbox/xyz", 1, root)


def test_tampered_notes_and_other_keys_are_refused() -> None:
    key = _key()
    root = hashlib.sha256(b"x").digest()
    signed = note.sign(note.checkpoint_text("perpbox/xyz", 7, root), "perpbox/xyz", key)
    vkey = note.verifier_key("perpbox/xyz", key)
    with pytest.raises(note.NoteError):
        note.open_note(signed.replace("\n7\n", "\n8\n"), vkey)  # the size changed after signing
    other = note.verifier_key("perpbox/xyz", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    with pytest.raises(note.NoteError):
        note.open_note(signed, other)  # a different key of the same name: no signature by it
    with pytest.raises(note.NoteError):
        note.open_note(signed.replace("\n\n", "\n"), vkey)  # no signature block


@pytest.mark.parametrize("text", ["perpbox/xyz\n-1\nAAAA\n", "perpbox/xyz\n01\n" + "A" * 44 + "\n",
                                  "perpbox/xyz\n1\n", "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"])
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(note.NoteError):
        note.parse_checkpoint(text)
