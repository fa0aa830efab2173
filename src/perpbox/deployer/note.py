"""Signed notes and transparency-log checkpoints in the C2SP formats (``c2sp.org/signed-note``,
``c2sp.org/tlog-checkpoint``), with Ed25519 keys, so that tools outside perpbox (Go's
``golang.org/x/mod/sumdb/note`` among them) verify what the relay publishes.

* A note is its text (lines, each ending in a newline), a blank line, then one signature line per
  signer: ``— <key name> <base64(key id ‖ signature)>``, the signature over the text's bytes.
* A key's id is the first 4 bytes of ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)`` (0x01: Ed25519).
* A verifier key is ``<name>+<key id as 8 hex digits>+<base64(0x01 ‖ public key)>``.
* A checkpoint's text is ``<origin>\\n<tree size>\\n<base64 root hash>\\n``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line


class NoteError(ValueError):
    """A note, key or checkpoint that does not parse or does not verify."""


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"invalid key name {name!r}: non-empty, no spaces or '+'")


def verifier_key(name: str, key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    _check_name(name)
    pub = public_bytes(key)
    return f"{name}+{key_id(name, pub).hex()}+{base64.b64encode(ED25519 + pub).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """(name, key id, public key) of a verifier key; ``NoteError`` when it is malformed or its id
    does not match its key."""
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, b64 = rest.partition("+")
    try:
        _check_name(name)
        kid = bytes.fromhex(hex_id)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error) as e:
        raise NoteError(f"malformed verifier key: {e}") from None
    if len(kid) != 4 or len(raw) != 33 or raw[:1] != ED25519:
        raise NoteError("malformed verifier key: want a 4-byte id and an Ed25519 key")
    if key_id(name, raw[1:]) != kid:
        raise NoteError("verifier key id does not match its key")
    return name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])


def signer_key(name: str, key: Ed25519PrivateKey) -> str:
    """The private key in Go's signer-key form, ``PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>``,
    so the same key file works with ``note.NewSigner``."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    _check_name(name)
    kid = key_id(name, public_bytes(key)).hex()
    return f"PRIVATE+KEY+{name}+{kid}+{base64.b64encode(ED25519 + seed).decode()}"


def parse_signer_key(skey: str) -> tuple[str, Ed25519PrivateKey]:
    """(name, private key) of a signer key; ``NoteError`` when it is malformed or its id does not
    match its key."""
    parts = skey.strip().split("+", 4)  # the base64 key may itself hold a "+"
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("malformed signer key: want PRIVATE+KEY+<name>+<id>+<key>")
    name, hex_id, b64 = parts[2:]
    _check_name(name)
    try:
        raw = base64.b64decode(b64, validate=True)
        kid = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error):
        raise NoteError("malformed signer key") from None
    if len(raw) != 33 or raw[:1] != ED25519 or len(kid) != 4:
        raise NoteError("malformed signer key: want an Ed25519 seed")
    key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if key_id(name, public_bytes(key)) != kid:
        raise NoteError("signer key id does not match its key")
    return name, key


def sign(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note of ``text`` (every line ending in a newline)."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text is non-empty lines, each ending in a newline")
    sig = key.sign(text.encode())
    stamp = base64.b64encode(key_id(name, public_bytes(key)) + sig).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {stamp}\n"


def open_note(note: str, vkey: str) -> str:
    """The text of ``note`` once a signature by ``vkey`` checks; ``NoteError`` otherwise."""
    name, kid, pub = parse_verifier_key(vkey)
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text += "\n"
    for line in sigs[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        who, _, b64 = line[len(SIGNATURE_PREFIX):].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError(f"malformed signature line {line!r}") from None
        if who != name or raw[:4] != kid:
            continue  # another signer's line
        try:
            pub.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(f"{name}'s signature does not verify") from None
        return text
    raise NoteError(f"no signature by {name}")


def is_decimal(text: str) -> bool:
    """An ASCII decimal with no leading zeros (``str.isdigit`` would take other scripts' digits)."""
    return bool(text) and all("0" <= c <= "9" for c in text) and (text == "0" or text[0] != "0")


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin or size < 0 or len(root) != 32:
        raise NoteError("a checkpoint needs an origin line, a size >= 0 and a 32-byte root")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a checkpoint's text (extension lines after the third are
    allowed by the format and ignored here)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint is at least three lines")
    origin, size, b64 = lines[0], lines[1], lines[2]
    try:
        root = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("checkpoint root is not base64") from None
    if not origin or not is_decimal(size) or len(root) != 32:
        raise NoteError("malformed checkpoint")
    return origin, int(size), root
