"""The relay's attestation log: every update attempt a leaf of an append-only RFC 9162 tree, signed
checkpoints with consistency proofs between them, and offline proofs of single records.

On disk (``DIR``), all of it publishable except the private key:

* ``records.jsonl`` — one record per line, each line the record's canonical bytes (JSON with sorted
  keys, no spaces, integers and strings only — never a float), leaf ``i`` of the tree on line ``i``;
* ``checkpoints/<size>.checkpoint`` — a C2SP ``tlog-checkpoint`` signed note for the tree of the
  first ``size`` records, origin ``perpbox/<dex>``; ``checkpoint`` is the latest one;
* ``checkpoints/<size>.consistency`` — the RFC 9162 consistency proof from the previous checkpoint:
  ``perpbox-consistency-v1``, the old size, the new size, then one base64 hash per line;
* ``attest.vkey`` — the verifier key (Go's ``sumdb/note`` form), for tools outside perpbox.

The signing key is a Go ``note`` signer key (``PRIVATE+KEY+…``) in its own file, created (mode 0600)
when missing.  A writer holds ``DIR/.lock`` so two relays never append to one log.  A record cut
short by a crash (a last line with no newline) is moved aside to ``records.torn`` when the log is
next opened: it was never acknowledged, so it is not in any checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from perpbox.deployer import merkle, note

RECORDS = "records.jsonl"
VKEY = "attest.vkey"
LATEST = "checkpoint"
CHECKPOINTS = "checkpoints"
CONSISTENCY_HEADER = "perpbox-consistency-v1"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class AttestError(ValueError):
    """A log, key, bundle or record that cannot be used; the message says which and why."""


def origin_of(dex: str) -> str:
    return f"perpbox/{dex}"


def _check_canonical(value: Any, where: str = "record") -> None:
    if isinstance(value, float):
        raise AttestError(f"{where}: a float ({value!r}); write numbers as integers or decimal strings")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise AttestError(f"{where}: a key that is not a string ({k!r})")
            _check_canonical(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_canonical(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, bool | int | str)):
        raise AttestError(f"{where}: {type(value).__name__} is not JSON")


def canonical(record: dict[str, Any]) -> bytes:
    """A record's canonical bytes: UTF-8 JSON, keys sorted, no whitespace, no floats."""
    _check_canonical(record)
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:  # an integer beyond 64 bits
        raise AttestError(f"record: {e}") from None


def load_signer(path: Path, name: str) -> Ed25519PrivateKey:
    """The signing key in ``path``, created there (mode 0600) when the file does not exist."""
    path = Path(path)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(note.signer_key(name, key) + "\n")
        return key
    try:
        key_name, key = note.parse_signer_key(path.read_text())
    except note.NoteError as e:
        raise AttestError(f"{path}: {e}") from None
    if key_name != name:
        raise AttestError(f"{path}: the key is named {key_name!r}, this log signs as {name!r}")
    return key


def _checkpoint_path(directory: Path, size: int, suffix: str) -> Path:
    return directory / CHECKPOINTS / f"{size:012d}.{suffix}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class AttestLog:
    """The writer: append records, write checkpoints.  One per directory (``DIR/.lock``)."""

    def __init__(self, directory: Path, dex: str, key: Ed25519PrivateKey) -> None:
        self.dir = Path(directory)
        self.origin = origin_of(dex)
        self.key = key
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / CHECKPOINTS).mkdir(exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")  # noqa: SIM115 (held for the writer's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise AttestError(f"{self.dir}: another writer holds this log") from None
        vkey = note.verifier_key(self.origin, key)
        vkey_path = self.dir / VKEY
        if vkey_path.exists() and vkey_path.read_text().strip() != vkey:
            self._lock.close()
            raise AttestError(f"{vkey_path}: this log was signed by another key")
        if not vkey_path.exists():
            _write_atomic(vkey_path, vkey + "\n")
        self.vkey = vkey
        self.torn = _repair_tail(self.dir / RECORDS)
        self.leaves = [merkle.leaf_hash(line) for line in _lines(self.dir / RECORDS)]
        self.checkpointed = latest_checkpoint_size(self.dir)
        self._out = open(self.dir / RECORDS, "ab")  # noqa: SIM115

    @classmethod
    def open(cls, directory: Path, dex: str, key_file: Path) -> AttestLog:
        return cls(directory, dex, load_signer(key_file, origin_of(dex)))

    @property
    def size(self) -> int:
        return len(self.leaves)

    def append(self, record: dict[str, Any]) -> int:
        """Write ``record`` (its ``index`` set to its leaf number) durably; the leaf number."""
        index = len(self.leaves)
        data = canonical({**record, "index": index})
        self._out.write(data + b"\n")
        self._out.flush()
        os.fsync(self._out.fileno())
        self.leaves.append(merkle.leaf_hash(data))
        return index

    def checkpoint(self) -> int | None:
        """Sign the tree as it stands, with a consistency proof from the previous checkpoint; the
        new size, or None when nothing was added since."""
        size = len(self.leaves)
        if size == self.checkpointed or size == 0:
            return None
        signed = note.sign(note.checkpoint_text(self.origin, size, merkle.root(self.leaves)), self.origin,
                           self.key)
        old = self.checkpointed
        proof = merkle.consistency_proof(old, self.leaves)
        body = "".join(f"{base64.b64encode(h).decode()}\n" for h in proof)
        _write_atomic(_checkpoint_path(self.dir, size, "consistency"), f"{CONSISTENCY_HEADER}\n{old}\n{size}\n{body}")
        _write_atomic(_checkpoint_path(self.dir, size, "checkpoint"), signed)
        _write_atomic(self.dir / LATEST, signed)
        self.checkpointed = size
        return size

    def close(self) -> None:
        self._out.close()
        self._lock.close()


def _lines(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                yield line[:-1]


def _repair_tail(path: Path) -> bytes:
    """Move a last line with no newline (a write a crash cut short) to ``records.torn``."""
    if not path.exists() or path.stat().st_size == 0:
        return b""
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return b""
    cut = data.rfind(b"\n") + 1
    with open(path.with_name("records.torn"), "ab") as f:
        f.write(data[cut:] + b"\n")
    with open(path, "r+b") as f:
        f.truncate(cut)
    return data[cut:]


def latest_checkpoint_size(directory: Path) -> int:
    sizes = [size for size, _ in _checkpoint_files(directory)]
    return max(sizes, default=0)


def _checkpoint_files(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in (Path(directory) / CHECKPOINTS).glob("*.checkpoint"):
        if p.stem.isdigit():
            out.append((int(p.stem), p))
    return sorted(out)


def record_bytes(directory: Path, index: int) -> bytes:
    for i, line in enumerate(_lines(Path(directory) / RECORDS)):
        if i == index:
            return line
    raise AttestError(f"no record {index} in {directory}")


# -- verification -----------------------------------------------------------------------------------

@dataclass
class Report:
    records: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _parse_consistency(text: str) -> tuple[int, int, list[bytes]]:
    lines = text.split("\n")
    if len(lines) < 4 or lines[0] != CONSISTENCY_HEADER or lines[-1] != "" or not (
            note.is_decimal(lines[1]) and note.is_decimal(lines[2])):
        raise AttestError("not a consistency proof")
    try:
        return int(lines[1]), int(lines[2]), [base64.b64decode(h, validate=True) for h in lines[3:-1]]
    except (ValueError, binascii.Error):
        raise AttestError("malformed consistency proof") from None


def verify_log(directory: Path, vkey: str | None = None) -> Report:
    """Check every record against the tree, every checkpoint's signature and root, and the
    consistency proof between each checkpoint and the one before it.  ``vkey``: the verifier key
    to trust (default: the log's own ``attest.vkey``, which proves only self-consistency)."""
    directory = Path(directory)
    report = Report()
    problems = report.problems
    if vkey is None:
        vkey_path = directory / VKEY
        if not vkey_path.exists():
            return Report(problems=[f"{vkey_path}: missing (give the verifier key)"])
        vkey = vkey_path.read_text().strip()
    try:
        origin, _, _ = note.parse_verifier_key(vkey)
    except note.NoteError as e:
        return Report(problems=[f"verifier key: {e}"])
    checkpoints = _checkpoint_files(directory)
    wanted = {size for size, _ in checkpoints}
    roots: dict[int, bytes] = {}
    tree = merkle.CompactRange()
    path = directory / RECORDS
    raw = path.read_bytes() if path.exists() else b""
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{RECORDS}: the last record is cut short (no newline)")
    for i, line in enumerate(raw.split(b"\n")[:-1] if raw else []):
        try:
            parsed = orjson.loads(line)
            if not isinstance(parsed, dict) or canonical(parsed) != line:
                problems.append(f"record {i}: not in canonical form")
            elif parsed.get("index") != i:
                problems.append(f"record {i}: says it is record {parsed.get('index')!r} (a record removed or moved)")
        except (orjson.JSONDecodeError, AttestError) as e:
            problems.append(f"record {i}: not canonical JSON ({e})")
        tree.append(merkle.leaf_hash(line))
        if tree.size in wanted:
            roots[tree.size] = tree.root()
    report.records = tree.size
    previous: tuple[int, bytes] = (0, merkle.EMPTY_ROOT)
    for size, cp_path in checkpoints:
        where = f"checkpoint {size}"
        try:
            cp_origin, cp_size, cp_root = note.parse_checkpoint(note.open_note(cp_path.read_text(), vkey))
        except (note.NoteError, UnicodeDecodeError) as e:
            problems.append(f"{where}: {e}")
            continue
        report.checkpoints += 1
        if cp_origin != origin or cp_size != size:
            problems.append(f"{where}: signed for {cp_origin} size {cp_size}")
            continue
        if size > report.records:
            problems.append(f"{where}: covers {size} records, the log has {report.records} (records removed)")
        elif roots.get(size) != cp_root:
            problems.append(f"{where}: the records do not hash to its root (a record was changed)")
        cons_path = _checkpoint_path(directory, size, "consistency")
        try:
            old, new, proof = _parse_consistency(cons_path.read_text())
        except (OSError, AttestError, UnicodeDecodeError) as e:
            problems.append(f"{where}: consistency proof: {e}")
        else:
            if (old, new) != (previous[0], size):
                problems.append(f"{where}: its consistency proof is from {old}, the previous checkpoint is "
                                f"{previous[0]}")
            elif not merkle.verify_consistency(old, size, previous[1], cp_root, proof):
                problems.append(f"{where}: not consistent with checkpoint {old} (the log was forked or rewritten)")
        previous = (size, cp_root)
    return report


# -- single-record proofs ---------------------------------------------------------------------------

def prove(directory: Path, index: int, *, with_record: bool = False) -> str:
    """A ``c2sp.org/tlog-proof@v1`` bundle for record ``index`` against the first checkpoint that
    covers it; ``with_record`` adds the record's canonical bytes as the ``extra`` line, so the
    bundle alone proves what the record says."""
    directory = Path(directory)
    leaves = [merkle.leaf_hash(line) for line in _lines(directory / RECORDS)]
    if not 0 <= index < len(leaves):
        raise AttestError(f"no record {index} (the log has {len(leaves)})")
    covering = [(size, p) for size, p in _checkpoint_files(directory) if size > index and size <= len(leaves)]
    if not covering:
        raise AttestError(f"no checkpoint covers record {index} yet (the relay writes one hourly and at exit; "
                          "or run `perpbox attest checkpoint`)")
    size, cp_path = covering[0]
    signed = cp_path.read_text()
    _, _, cp_root = note.parse_checkpoint(signed[: signed.index("\n\n") + 1])
    if merkle.root(leaves[:size]) != cp_root:
        raise AttestError(f"checkpoint {size} does not match the records (run `perpbox attest verify`)")
    lines = [PROOF_HEADER]
    if with_record:
        lines.append("extra " + base64.b64encode(record_bytes(directory, index)).decode())
    lines.append(f"index {index}")
    lines += [base64.b64encode(h).decode() for h in merkle.inclusion_proof(index, leaves[:size])]
    return "\n".join(lines) + "\n\n" + signed


@dataclass(frozen=True)
class BundleCheck:
    index: int
    size: int
    record: bytes | None  # the record the bundle was checked against (None: not checked)


def verify_bundle(bundle: str, vkey: str, record: bytes | None = None) -> BundleCheck:
    """Check a ``tlog-proof`` bundle offline: the checkpoint's signature under ``vkey``, and — with
    the record (given, or in the bundle's ``extra`` line) — its inclusion at ``index``.
    ``AttestError`` on any failure."""
    head, sep, signed = bundle.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != PROOF_HEADER:
        raise AttestError(f"not a tlog-proof bundle (want {PROOF_HEADER!r} and a blank line)")
    rest = lines[1:]
    extra = None
    try:
        if rest and rest[0].startswith("extra "):
            extra = base64.b64decode(rest.pop(0)[6:], validate=True)
        if not rest or not rest[0].startswith("index "):
            raise AttestError("bundle: no index line")
        digits = rest[0][6:]
        if not note.is_decimal(digits):
            raise AttestError("bundle: the index is not a decimal with no leading zeros")
        index = int(digits)
        proof = [base64.b64decode(h, validate=True) for h in rest[1:]]
    except (ValueError, binascii.Error) as e:
        raise AttestError(f"bundle: {e}") from None
    if any(len(h) != 32 for h in proof):
        raise AttestError("bundle: an inclusion hash is not 32 bytes")
    try:
        origin, size, root = note.parse_checkpoint(note.open_note(signed, vkey))
        key_origin = note.parse_verifier_key(vkey)[0]
    except note.NoteError as e:
        raise AttestError(f"bundle checkpoint: {e}") from None
    if origin != key_origin:
        raise AttestError(f"bundle checkpoint is for {origin}, the key signs for {key_origin}")
    if record is not None and extra is not None and record != extra:
        raise AttestError("the record given differs from the one in the bundle")
    leaf = record if record is not None else extra
    if leaf is not None and not merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, proof, root):
        raise AttestError(f"record {index} is not in the checkpointed tree of {size}")
    return BundleCheck(index=index, size=size, record=leaf)
