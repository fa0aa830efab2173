"""The durable command log (SQLite) and its snapshots.

What is logged: every command the sequencer hands to the engine, in order, with the signer and
nonce of the signed action it came from (so the nonce windows are rebuilt on restart too).  The
engine is deterministic, so re-applying the log rebuilds the same state and the same events; read
models are folds over those events.

Durability policy: SQLite in WAL mode with ``synchronous=FULL`` — every commit is fsynced before
it returns.  The sequencer writes one transaction per batch of commands (group commit) and
acknowledges a command only after that transaction committed, so every acknowledged action
survives ``kill -9`` and power loss; commands still in the queue when the process dies were never
acknowledged.  ``synchronous=NORMAL`` (``--fsync never``) trades the last batches on power loss
(not on a process crash) for throughput.

Snapshots: a pickle of the service state (engine, read models, nonce windows) with the sequence
number it covers and the engine's state hash.  Restart loads the newest snapshot whose hash checks
out and re-applies the log after it; a snapshot that fails to load is ignored (full replay).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import msgspec

from perpbox.exchange import commands as C


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Fraction):  # exact ratios in market specs travel as "num/den"
        return f"{obj.numerator}/{obj.denominator}"
    raise NotImplementedError(type(obj))


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Fraction and isinstance(obj, str):
        return Fraction(obj)
    raise NotImplementedError(typ)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    type=Union[tuple(_all_subclasses(C.Command))],  # type: ignore[valid-type]  # noqa: UP007
    dec_hook=_dec_hook,
)


def encode_command(cmd: C.Command) -> bytes:
    return _ENCODER.encode(cmd)


def decode_command(body: bytes) -> C.Command:
    cmd: C.Command = _DECODER.decode(body)
    return cmd


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    command: C.Command
    signer: str | None = None
    nonce: int | None = None


class CommandLog:
    """Append-only command log in ``DATA_DIR/perpbox.db``; one writer."""

    def __init__(self, data_dir: Path, fsync: bool = True) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "perpbox.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, signer TEXT, nonce INTEGER,"
                         " body BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS snapshot (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL,"
                         " body BLOB NOT NULL)")
        row = self._db.execute("SELECT MAX(seq) FROM log").fetchone()
        self.last_seq: int = row[0] or 0

    def append(self, entries: list[LogEntry]) -> None:
        """Write a batch in one transaction; returns once it is durable (per the fsync policy)."""
        rows = [(e.seq, e.signer, e.nonce, encode_command(e.command)) for e in entries]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO log (seq, signer, nonce, body) VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            if entries:
                self.last_seq = entries[-1].seq

    def read(self, after: int = 0) -> Iterator[LogEntry]:
        """Entries with ``seq > after``, in order."""
        cur = self._db.execute("SELECT seq, signer, nonce, body FROM log WHERE seq > ? ORDER BY seq", (after,))
        for seq, signer, nonce, body in cur:
            yield LogEntry(seq, decode_command(body), signer, nonce)

    def count(self, after: int = 0) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM log WHERE seq > ?", (after,)).fetchone()[0])

    def save_snapshot(self, seq: int, state_hash: str, body: bytes) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO snapshot (seq, hash, body) VALUES (?, ?, ?)",
                             (seq, state_hash, body))
            self._db.execute("DELETE FROM snapshot WHERE seq < ?", (seq,))  # keep the newest only
            self._db.execute("COMMIT")

    def latest_snapshot(self) -> tuple[int, str, bytes] | None:
        row = self._db.execute("SELECT seq, hash, body FROM snapshot ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bytes(row[2]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
