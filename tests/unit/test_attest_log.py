"""The attestation log (``perpbox.deployer.attestlog``) with real files: what the writer puts on disk,
what ``verify_log`` and ``perpbox attest verify`` refuse after each kind of tampering, single-record
proofs (``prove`` / ``verify_bundle`` and their commands), and reopening a log.

Expected bytes are written by hand from the formats in the module docstrings (canonical JSON, RFC
9162 hashing, C2SP signed notes), not taken from the code's output."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from perpbox.deployer import attestlog, merkle, note
from perpbox.deployer.attestlog import (
    AttestError,
    AttestLog,
    canonical,
    load_signer,
    prove,
    record_bytes,
    verify_bundle,
    verify_log,
)

SEED = bytes(range(32, 64))
OTHER_SEED = bytes(range(64, 96))
PLUS_SEED = bytes([8]) * 32  # its public key's base64 holds a "+" (SEED's and OTHER_SEED's do not)
ORIGIN = "perpbox/xyz"
RECORDS = 18  # records 16 and 17 come after the last checkpoint
CHECKPOINT_AT = (5, 9, 16)
ED25519 = b"\x01"  # signed-note's algorithm byte


def _key(seed: bytes = SEED) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _key_id(name: str, pub: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]


def _vkey(key: Ed25519PrivateKey, name: str = ORIGIN) -> str:
    """A verifier key by the signed-note spec: name+hex(key id)+base64(0x01 ‖ public key)."""
    pub = _pub(key)
    tagged = base64.b64encode(ED25519 + pub).decode()
    return f"{name}+{_key_id(name, pub).hex()}+{tagged}"


def _record(i: int) -> dict[str, object]:
    return {"time": 1700000000000 + i, "oracle": "32.105", "coin": "xyz:SILVER"}


def _line(i: int, oracle: str = "32.105") -> bytes:
    """Record i's canonical bytes by hand: keys sorted, no spaces, the index added."""
    return b'{"coin":"xyz:SILVER","index":%d,"oracle":"%s","time":%d}' % (i, oracle.encode(), 1700000000000 + i)


def _mth(entries: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 over the records' bytes."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(entries[:k]) + _mth(entries[k:])).digest()


def _build(directory: Path, key: Ed25519PrivateKey, n: int = RECORDS, checkpoints: tuple[int, ...] = CHECKPOINT_AT,
           changed: dict[int, dict[str, object]] | None = None) -> Path:
    log = AttestLog(directory, "xyz", key)
    try:
        for i in range(n):
            assert log.append((changed or {}).get(i, _record(i))) == i
            if i + 1 in checkpoints:
                assert log.checkpoint() == i + 1
    finally:
        log.close()
    return directory


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return _build(tmp_path / "attest", _key())


def _cp(directory: Path, size: int, suffix: str = "checkpoint") -> Path:
    """``checkpoints/<size>.<suffix>`` (however the size is padded)."""
    found = [p for p in (directory / "checkpoints").glob(f"*.{suffix}") if p.stem.isdigit() and int(p.stem) == size]
    assert len(found) == 1, (size, suffix, found)
    return found[0]


def _lines(directory: Path) -> list[bytes]:
    raw = (directory / "records.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    return raw.split(b"\n")[:-1]


def _write_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _fixed_generate(monkeypatch: pytest.MonkeyPatch, key: Ed25519PrivateKey) -> None:
    """Make ``load_signer``'s new key ``key``, so a test does not depend on a random key's bytes."""

    class Fixed:
        @staticmethod
        def generate() -> Ed25519PrivateKey:
            return key

    monkeypatch.setattr(attestlog, "Ed25519PrivateKey", Fixed)


def _cli(*args: object, stdout: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "perpbox.cli", "attest", *map(str, args)]
    if stdout is None:
        return subprocess.run(cmd, capture_output=True, check=False)
    with open(stdout, "wb") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, check=False)


# -- canonical bytes ---------------------------------------------------------------------------------

def test_canonical_sorts_keys_and_has_no_spaces() -> None:
    record = {"b": 1, "a": "x y", "c": {"z": [1, "2", None, True], "y": False}, "A": -7}
    assert canonical(record) == b'{"A":-7,"a":"x y","b":1,"c":{"y":false,"z":[1,"2",null,true]}}'
    assert canonical({}) == b"{}"


@pytest.mark.parametrize("record", [{"a": 1.0}, {"a": 0.5}, {"a": {"b": [1, 2.5]}}, {"a": [{"b": float("nan")}]},
                                    {"a": [[float("inf")]]}],
                         ids=["top", "half", "nested-list", "nested-nan", "deep-inf"])
def test_canonical_refuses_floats(record: dict[str, object]) -> None:
    with pytest.raises(AttestError):
        canonical(record)


@pytest.mark.parametrize("record", [{1: "a"}, {"a": {2: "b"}}, {"a": [{(1, 2): "c"}]}, {None: 1}],
                         ids=["int", "nested-int", "tuple-in-list", "none"])
def test_canonical_refuses_keys_that_are_not_strings(record: dict[object, object]) -> None:
    with pytest.raises(AttestError):
        canonical(record)  # type: ignore[arg-type]


def test_canonical_refuses_what_json_cannot_say() -> None:
    with pytest.raises(AttestError):
        canonical({"a": 2**70})  # beyond 64 bits
    with pytest.raises(AttestError):
        canonical({"a": b"bytes"})
    with pytest.raises(AttestError):
        canonical({"a": {1, 2}})


def test_records_jsonl_is_each_records_canonical_bytes_with_its_index(log_dir: Path) -> None:
    assert (log_dir / "records.jsonl").read_bytes() == b"".join(_line(i) + b"\n" for i in range(RECORDS))
    for i in range(RECORDS):
        assert record_bytes(log_dir, i) == _line(i)
    with pytest.raises(AttestError):
        record_bytes(log_dir, RECORDS)


def test_append_sets_the_index_to_the_leaf_number(tmp_path: Path) -> None:
    log = AttestLog(tmp_path / "attest", "xyz", _key())
    try:
        assert log.append({"index": 99, "a": "b"}) == 0
        assert log.append({"a": "c"}) == 1
        with pytest.raises(AttestError):
            log.append({"a": 1.5})
        assert log.size == 2
    finally:
        log.close()
    assert (tmp_path / "attest" / "records.jsonl").read_bytes() == b'{"a":"b","index":0}\n{"a":"c","index":1}\n'


def test_checkpoint_files_are_spec_checkpoints_with_consistency_proofs(log_dir: Path) -> None:
    key = _key()
    previous = 0
    for size in CHECKPOINT_AT:
        signed = _cp(log_dir, size).read_text()
        root = _mth([_line(i) for i in range(size)])
        text = f"{ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = key.sign(text.encode())  # Ed25519 is deterministic: the one right signature
        stamp = base64.b64encode(_key_id(ORIGIN, _pub(key)) + sig).decode()
        assert signed == text + "\n\u2014 " + ORIGIN + " " + stamp + "\n"
        cons = _cp(log_dir, size, "consistency").read_text().split("\n")
        assert cons[:3] == ["perpbox-consistency-v1", str(previous), str(size)] and cons[-1] == ""
        proof = [base64.b64decode(h, validate=True) for h in cons[3:-1]]
        old_root = _mth([_line(i) for i in range(previous)])
        assert merkle.verify_consistency(previous, size, old_root, root, proof)
        previous = size
    assert (log_dir / "checkpoint").read_text() == _cp(log_dir, CHECKPOINT_AT[-1]).read_text()


def test_checkpoint_with_nothing_new_writes_nothing(tmp_path: Path) -> None:
    log = AttestLog(tmp_path / "attest", "xyz", _key())
    try:
        assert log.checkpoint() is None  # an empty log
        log.append(_record(0))
        assert log.checkpoint() == 1
        assert log.checkpoint() is None
    finally:
        log.close()
    assert len(list((tmp_path / "attest" / "checkpoints").glob("*.checkpoint"))) == 1


# -- verify_log and `perpbox attest verify` ----------------------------------------------------------

def test_an_untouched_log_verifies(log_dir: Path) -> None:
    report = verify_log(log_dir, _vkey(_key()))
    assert report.ok, report.problems
    assert (report.records, report.checkpoints) == (RECORDS, len(CHECKPOINT_AT))
    assert verify_log(log_dir).ok  # against its own attest.vkey
    done = _cli("verify", log_dir, "--public-key", log_dir / "attest.vkey")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("ok")


def _change_a_checkpointed_record(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    assert b'"32.105"' in lines[3]
    lines[3] = lines[3].replace(b'"32.105"', b'"32.106"')
    _write_lines(d, lines)


def _remove_a_checkpointed_record(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    del lines[7]
    _write_lines(d, lines)


def _remove_a_record_after_the_last_checkpoint_but_not_the_last(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    del lines[16]
    _write_lines(d, lines)


def _swap_two_records(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    lines[2], lines[3] = lines[3], lines[2]
    _write_lines(d, lines)


def _swap_two_records_after_the_last_checkpoint(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    lines[16], lines[17] = lines[17], lines[16]
    _write_lines(d, lines)


def _reserialise_with_spaces(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    lines[4] = json.dumps(json.loads(lines[4]), sort_keys=True).encode()
    assert b", " in lines[4]
    _write_lines(d, lines)


def _reserialise_with_spaces_after_the_last_checkpoint(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    lines[17] = json.dumps(json.loads(lines[17]), sort_keys=True).encode()
    _write_lines(d, lines)


def _reserialise_keys_unsorted_after_the_last_checkpoint(d: Path, tmp: Path) -> None:
    lines = _lines(d)
    obj = json.loads(lines[16])
    lines[16] = json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")).encode()
    assert lines[16].startswith(b'{"time"')
    _write_lines(d, lines)


def _truncate_the_last_line(d: Path, tmp: Path) -> None:
    raw = (d / "records.jsonl").read_bytes()
    (d / "records.jsonl").write_bytes(raw[:-10])


def _drop_the_last_newline(d: Path, tmp: Path) -> None:
    raw = (d / "records.jsonl").read_bytes()
    (d / "records.jsonl").write_bytes(raw[:-1])


def _change_a_signature_byte(d: Path, tmp: Path) -> None:
    path = _cp(d, 9)
    text, sig_line = path.read_text().split("\n\n")
    prefix = "\u2014 " + ORIGIN + " "
    assert sig_line.startswith(prefix)
    i = len(prefix) + 40  # inside the Ed25519 signature, past the 4-byte key id
    changed = sig_line[:i] + ("A" if sig_line[i] != "A" else "B") + sig_line[i + 1:]
    path.write_text(text + "\n\n" + changed)


def _resign_with_another_key(d: Path, tmp: Path) -> None:
    path = _cp(d, 9)
    text = path.read_text().split("\n\n")[0] + "\n"
    other = _key(OTHER_SEED)
    stamp = base64.b64encode(_key_id(ORIGIN, _pub(other)) + other.sign(text.encode())).decode()
    path.write_text(f"{text}\n\u2014 {ORIGIN} {stamp}\n")


def _copy_a_forks_later_checkpoint(d: Path, tmp: Path) -> None:
    """A second log with the same key that differs at record 3, checkpointed further: its latest
    checkpoint and consistency proof dropped into this log."""
    fork = _build(tmp / "fork", _key(), n=20, checkpoints=(*CHECKPOINT_AT, 20),
                  changed={3: {**_record(3), "oracle": "99.999"}})
    for suffix in ("checkpoint", "consistency"):
        src = _cp(fork, 20, suffix)
        shutil.copy(src, d / "checkpoints" / src.name)


def _delete_a_consistency_file(d: Path, tmp: Path) -> None:
    _cp(d, 9, "consistency").unlink()


def _delete_a_middle_checkpoint(d: Path, tmp: Path) -> None:
    _cp(d, 9).unlink()
    _cp(d, 9, "consistency").unlink()


def _delete_the_first_checkpoint(d: Path, tmp: Path) -> None:
    _cp(d, 5).unlink()
    _cp(d, 5, "consistency").unlink()


TAMPERS: dict[str, tuple[Callable[[Path, Path], None], str | None]] = {
    # name: (the tampering, a word one of the problems must contain, or None)
    "changed-record": (_change_a_checkpointed_record, "root"),
    "removed-record": (_remove_a_checkpointed_record, None),
    "removed-uncheckpointed-record": (_remove_a_record_after_the_last_checkpoint_but_not_the_last, "record 16"),
    "swapped-records": (_swap_two_records, None),
    "swapped-uncheckpointed-records": (_swap_two_records_after_the_last_checkpoint, "record 16"),
    "spaces": (_reserialise_with_spaces, "canonical"),
    "spaces-uncheckpointed": (_reserialise_with_spaces_after_the_last_checkpoint, "canonical"),
    "unsorted-uncheckpointed": (_reserialise_keys_unsorted_after_the_last_checkpoint, "canonical"),
    "truncated-last-line": (_truncate_the_last_line, "cut short"),
    "no-last-newline": (_drop_the_last_newline, "cut short"),
    "signature-byte": (_change_a_signature_byte, "checkpoint 9"),
    "other-key": (_resign_with_another_key, "checkpoint 9"),
    "fork": (_copy_a_forks_later_checkpoint, "consistent"),
    "consistency-deleted": (_delete_a_consistency_file, "checkpoint 9"),
    "middle-checkpoint-deleted": (_delete_a_middle_checkpoint, "checkpoint 16"),
    "first-checkpoint-deleted": (_delete_the_first_checkpoint, "checkpoint 9"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_each_tampering_is_reported(log_dir: Path, tmp_path: Path, name: str) -> None:
    tamper, word = TAMPERS[name]
    tamper(log_dir, tmp_path)
    report = verify_log(log_dir, _vkey(_key()))
    assert not report.ok
    if word is not None:
        assert any(word in p for p in report.problems), report.problems
    done = _cli("verify", log_dir, "--public-key", log_dir / "attest.vkey")
    assert done.returncode == 1
    assert b"FAIL" in done.stderr


def test_a_different_public_key_refuses_every_checkpoint(log_dir: Path, tmp_path: Path) -> None:
    for vkey in (_vkey(_key(OTHER_SEED)), _vkey(_key(OTHER_SEED), "perpbox/abc"), _vkey(_key(), "perpbox/abc")):
        report = verify_log(log_dir, vkey)
        assert not report.ok and report.checkpoints == 0
        for size in CHECKPOINT_AT:
            assert any(p.startswith(f"checkpoint {size}:") for p in report.problems), (vkey, report.problems)
    (tmp_path / "other.vkey").write_text(_vkey(_key(OTHER_SEED)) + "\n")
    done = _cli("verify", log_dir, "--public-key", tmp_path / "other.vkey")
    assert done.returncode == 1


# -- single-record proofs ----------------------------------------------------------------------------

def _covering(i: int) -> int:
    return next(size for size in CHECKPOINT_AT if size > i)


def test_every_covered_record_proves_and_verifies(log_dir: Path) -> None:
    vkey = _vkey(_key())
    for i in range(CHECKPOINT_AT[-1]):
        check = verify_bundle(prove(log_dir, i), vkey, _line(i))
        assert (check.index, check.size, check.record) == (i, _covering(i), _line(i))
        alone = prove(log_dir, i, with_record=True)
        assert f"\nextra {base64.b64encode(_line(i)).decode()}\nindex {i}\n" in alone
        check = verify_bundle(alone, vkey)
        assert (check.index, check.size, check.record) == (i, _covering(i), _line(i))
        assert verify_bundle(alone, vkey, _line(i)).record == _line(i)


def test_a_bundle_without_a_record_checks_only_the_signature(log_dir: Path) -> None:
    check = verify_bundle(prove(log_dir, 3), _vkey(_key()))
    assert (check.index, check.size, check.record) == (3, 5, None)


def _flip_first_hash(bundle: str) -> str:
    lines = bundle.split("\n")
    h = bytearray(base64.b64decode(lines[2]))
    h[0] ^= 1
    lines[2] = base64.b64encode(bytes(h)).decode()
    return "\n".join(lines)


@pytest.mark.parametrize("i", [0, 3, 4, 7, 12, 15])
def test_a_wrong_record_hash_index_or_key_is_refused(log_dir: Path, i: int) -> None:
    vkey = _vkey(_key())
    bundle = prove(log_dir, i)
    assert bundle.split("\n")[1] == f"index {i}"
    with pytest.raises(AttestError):
        verify_bundle(bundle, vkey, _line(i + 1))  # another record
    with pytest.raises(AttestError):
        verify_bundle(bundle, vkey, _line(i, oracle="32.106"))  # this record, changed
    with pytest.raises(AttestError):
        verify_bundle(prove(log_dir, i, with_record=True), vkey, _line(i + 1))
    with pytest.raises(AttestError):
        verify_bundle(_flip_first_hash(bundle), vkey, _line(i))
    for j in {i - 1, i + 1, i + 2, 16, 10**6} - {-1}:
        with pytest.raises(AttestError):
            verify_bundle(bundle.replace(f"\nindex {i}\n", f"\nindex {j}\n"), vkey, _line(i))
    for bad in (f"0{i}", f"+{i}", f" {i}", f"{i} ", f"-{i}"):
        with pytest.raises(AttestError):
            verify_bundle(bundle.replace(f"\nindex {i}\n", f"\nindex {bad}\n"), vkey, _line(i))
    for wrong in (_vkey(_key(OTHER_SEED)), _vkey(_key(), "perpbox/abc")):
        with pytest.raises(AttestError):
            verify_bundle(bundle, wrong, _line(i))
    with pytest.raises(AttestError):
        verify_bundle(bundle.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), vkey, _line(i))


def test_a_record_no_checkpoint_covers_cannot_be_proved(log_dir: Path) -> None:
    for i in (16, 17):  # in the log, after the last checkpoint
        with pytest.raises(AttestError, match=rf"\b{i}\b"):
            prove(log_dir, i)
    with pytest.raises(AttestError, match=r"\b18\b"):
        prove(log_dir, 18)  # not in the log at all
    done = _cli("prove", log_dir, "--index", 16)
    assert done.returncode == 1 and b"16" in done.stderr


def test_the_proof_commands(log_dir: Path, tmp_path: Path) -> None:
    vkey = log_dir / "attest.vkey"
    bundle, record, alone = tmp_path / "r7.tlog-proof", tmp_path / "r7.json", tmp_path / "r7-alone.tlog-proof"
    assert _cli("prove", log_dir, "--index", 7, stdout=bundle).returncode == 0
    assert _cli("record", log_dir, "--index", 7, stdout=record).returncode == 0
    assert _cli("prove", log_dir, "--index", 7, "--with-record", stdout=alone).returncode == 0
    assert record.read_bytes() == _line(7)
    assert bundle.read_text().startswith("c2sp.org/tlog-proof@v1\nindex 7\n")
    done = _cli("verify-proof", bundle, "--public-key", vkey, "--record", record)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("ok")
    done = _cli("verify-proof", alone, "--public-key", vkey)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("ok")
    done = _cli("verify-proof", bundle, "--public-key", vkey)  # no record anywhere: only the signature
    assert done.returncode == 1
    (tmp_path / "r8.json").write_bytes(_line(8))
    done = _cli("verify-proof", bundle, "--public-key", vkey, "--record", tmp_path / "r8.json")
    assert done.returncode == 1 and b"FAIL" in done.stderr


# -- reopening, keys, locks --------------------------------------------------------------------------

def test_a_reopened_log_continues_and_stays_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fixed_generate(monkeypatch, _key())  # a key whose verifier key has no "+" (see the load_signer tests)
    directory, key_file = tmp_path / "attest", tmp_path / "xyz.key"
    log = AttestLog.open(directory, "xyz", key_file)
    try:
        for i in range(7):
            log.append(_record(i))
        assert log.checkpoint() == 7
        log.append(_record(7))  # appended, not checkpointed, before the close
    finally:
        log.close()
    log = AttestLog.open(directory, "xyz", key_file)
    try:
        assert log.size == 8
        assert log.torn == b""
        assert [log.append(_record(i)) for i in (8, 9)] == [8, 9]
        assert log.checkpoint() == 10
        assert log.checkpoint() is None
    finally:
        log.close()
    assert _lines(directory) == [_line(i) for i in range(10)]
    cons = _cp(directory, 10, "consistency").read_text().split("\n")
    assert cons[:3] == ["perpbox-consistency-v1", "7", "10"]
    proof = [base64.b64decode(h) for h in cons[3:-1]]
    assert merkle.verify_consistency(7, 10, _mth([_line(i) for i in range(7)]), _mth([_line(i) for i in range(10)]),
                                     proof)
    key = load_signer(key_file, ORIGIN)
    report = verify_log(directory, _vkey(key))
    assert report.ok, report.problems
    assert (report.records, report.checkpoints) == (10, 2)


def test_a_torn_tail_is_moved_aside_when_the_log_is_reopened(log_dir: Path) -> None:
    torn = b'{"coin":"xyz:SIL'
    with open(log_dir / "records.jsonl", "ab") as f:
        f.write(torn)
    assert not verify_log(log_dir, _vkey(_key())).ok  # cut short, before the repair
    log = AttestLog(log_dir, "xyz", _key())
    try:
        assert log.torn == torn
        assert log.size == RECORDS
        assert log.append(_record(RECORDS)) == RECORDS
        assert log.checkpoint() == RECORDS + 1
    finally:
        log.close()
    assert (log_dir / "records.torn").read_bytes() == torn + b"\n"
    assert _lines(log_dir) == [_line(i) for i in range(RECORDS + 1)]
    report = verify_log(log_dir, _vkey(_key()))
    assert report.ok, report.problems
    assert (report.records, report.checkpoints) == (RECORDS + 1, len(CHECKPOINT_AT) + 1)


def test_reopening_a_clean_log_moves_nothing_aside(log_dir: Path) -> None:
    AttestLog(log_dir, "xyz", _key()).close()
    assert not (log_dir / "records.torn").exists()
    assert _lines(log_dir) == [_line(i) for i in range(RECORDS)]


def test_a_second_writer_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    directory = tmp_path / "attest"
    first = AttestLog(directory, "xyz", _key())
    try:
        with pytest.raises(AttestError):
            AttestLog(directory, "xyz", _key())
        with pytest.raises(AttestError):
            AttestLog.open(directory, "xyz", tmp_path / "xyz.key")
        first.append(_record(0))
    finally:
        first.close()
    second = AttestLog(directory, "xyz", _key())  # free again once the first closed
    try:
        assert second.size == 1
    finally:
        second.close()


@pytest.mark.parametrize("seed", [SEED, PLUS_SEED], ids=["no-plus-in-vkey", "plus-in-vkey"])
def test_load_signer_creates_a_go_form_key_file_and_reuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              seed: bytes) -> None:
    _fixed_generate(monkeypatch, _key(seed))
    path = tmp_path / "keys" / "xyz.key"
    key = load_signer(path, ORIGIN)
    assert _pub(key) == _pub(_key(seed))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    m = re.fullmatch(r"PRIVATE\+KEY\+perpbox/xyz\+([0-9a-f]{8})\+([A-Za-z0-9+/]{44})\n", text)
    assert m, text
    raw = base64.b64decode(m.group(2))
    assert raw[0] == 1 and len(raw) == 33  # 0x01 (Ed25519) ‖ the 32-byte seed
    seeded = Ed25519PrivateKey.from_private_bytes(raw[1:])
    assert _pub(seeded) == _pub(key)
    assert m.group(1) == _key_id(ORIGIN, _pub(key)).hex()
    again = load_signer(path, ORIGIN)
    assert _pub(again) == _pub(key)
    assert path.read_text() == text
    with pytest.raises(AttestError):
        load_signer(path, "perpbox/abc")  # a key named for another log
    (tmp_path / "bad.key").write_text("PRIVATE+KEY+perpbox/xyz+00000000+AAAA\n")
    with pytest.raises(AttestError):
        load_signer(tmp_path / "bad.key", ORIGIN)


def test_load_signer_key_files_of_random_keys_load_again(tmp_path: Path) -> None:
    """Half of all Ed25519 public keys have a "+" in their base64; 32 fresh keys must all reload."""
    unreadable = []
    for i in range(32):
        path = tmp_path / f"{i}.key"
        key = load_signer(path, ORIGIN)
        try:
            assert _pub(load_signer(path, ORIGIN)) == _pub(key)
        except AttestError:
            unreadable.append((_vkey(key), path.read_text()))
    assert unreadable == []


def test_load_signer_reads_a_key_written_in_gos_form(tmp_path: Path) -> None:
    seed = bytes(range(7, 39))
    pub = _pub(_key(seed))
    path = tmp_path / "go.key"
    tagged = base64.b64encode(ED25519 + seed).decode()
    path.write_text(f"PRIVATE+KEY+{ORIGIN}+{_key_id(ORIGIN, pub).hex()}+{tagged}\n")
    assert _pub(load_signer(path, ORIGIN)) == pub


def test_opening_a_log_with_another_key_is_refused(log_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(AttestError):
        AttestLog(log_dir, "xyz", _key(OTHER_SEED))
    with pytest.raises(AttestError):
        AttestLog.open(log_dir, "xyz", tmp_path / "new.key")  # a fresh key: not this log's
    log = AttestLog(log_dir, "xyz", _key())  # the refusals left no lock behind
    try:
        assert log.size == RECORDS
    finally:
        log.close()
    assert (log_dir / "attest.vkey").read_text() == _vkey(_key()) + "\n"
    assert verify_log(log_dir, _vkey(_key())).ok


def test_note_signing_and_verifier_keys_agree_with_the_spec_helpers() -> None:
    """The helpers above (key id, verifier key) are the spec's; perpbox's agree with them."""
    assert note.verifier_key(ORIGIN, _key()) == _vkey(_key())
