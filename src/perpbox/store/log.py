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

Snapshots: the service state (engine, read models, nonce windows) as plain data, versioned and the
same in the pure and compiled builds (``store.snapshot``), with the sequence number it covers and
the engine's state hash; only the newest is kept.  Restart loads it if it decodes and its hash
checks out, and re-applies the log after it; a snapshot that cannot be used is reported with the
reason (``store.recovery.RecoveryReport``: the serve banner, ``perpbox replay``, the ``perpbox.venue``
logger) and the whole log is re-applied.

A write checks that every command decodes again (what replay needs) before it starts; a write that
fails (a command that does not encode or would not decode, a full disk) rolls back and raises:
nothing of the batch is in the log, and the connection is ready for the next one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import msgspec

from perpbox.exchange import commands as C


def _all_subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
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


def _replayable(entry: LogEntry) -> bytes:
    """The entry's command encoded, once it is known to decode again: a command that does not (a
    field of the wrong type, which encodes but fails the typed decoder) would stop every restart,
    so it is refused here, before anything of its batch is written."""
    body = encode_command(entry.command)
    try:
        decode_command(body)
    except msgspec.DecodeError as e:
        raise ValueError(f"seq {entry.seq}: {type(entry.command).__name__} would not replay ({e})") from None
    return body


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
        rows = [(e.seq, e.signer, e.nonce, _replayable(e)) for e in entries]
        with self._lock:
            self._transaction(lambda: self._db.executemany(
                "INSERT INTO log (seq, signer, nonce, body) VALUES (?, ?, ?, ?)", rows))
            if entries:
                self.last_seq = entries[-1].seq

    def _transaction(self, work: Callable[[], object]) -> None:
        """``work`` in one transaction: committed, or rolled back and the error raised."""
        self._db.execute("BEGIN")
        try:
            work()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def read(self, after: int = 0) -> Iterator[LogEntry]:
        """Entries with ``seq > after``, in order."""
        cur = self._db.execute("SELECT seq, signer, nonce, body FROM log WHERE seq > ? ORDER BY seq", (after,))
        for seq, signer, nonce, body in cur:
            yield LogEntry(seq, decode_command(body), signer, nonce)

    def count(self, after: int = 0) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM log WHERE seq > ?", (after,)).fetchone()[0])

    def seq_at(self, ts_ms: int) -> int:
        """The last sequence number whose command was stamped at or before ``ts_ms`` (0: none)."""
        cur = self._db.execute("SELECT seq, body FROM log ORDER BY seq DESC")
        for seq, body in cur:
            if decode_command(body).ts <= ts_ms:
                return int(seq)
        return 0

    def truncate(self, after: int) -> None:
        """Delete every entry and snapshot past ``after`` (the rollback dev fault only: the log is
        otherwise append-only)."""
        def work() -> None:
            self._db.execute("DELETE FROM log WHERE seq > ?", (after,))
            self._db.execute("DELETE FROM snapshot WHERE seq > ?", (after,))

        with self._lock:
            self._transaction(work)
            self.last_seq = min(self.last_seq, after)

    def save_snapshot(self, seq: int, state_hash: str, body: bytes) -> None:
        def work() -> None:
            self._db.execute("INSERT OR REPLACE INTO snapshot (seq, hash, body) VALUES (?, ?, ?)",
                             (seq, state_hash, body))
            self._db.execute("DELETE FROM snapshot WHERE seq < ?", (seq,))  # keep the newest only

        with self._lock:
            self._transaction(work)

    def latest_snapshot(self) -> tuple[int, str, bytes] | None:
        row = self._db.execute("SELECT seq, hash, body FROM snapshot ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bytes(row[2]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
