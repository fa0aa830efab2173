"""Restart: the state rebuilt from the newest usable snapshot and the command log after it.

The newest snapshot (``store.snapshot``: plain data, the same in the pure and compiled builds) is
used if it loads and its state hash checks out, then the log after it is re-applied; else the whole
log is.  Either way the outcome is reported (``RecoveryReport``: the serve banner, ``perpbox replay``
and the ``perpbox.venue`` logger say which snapshot was loaded or why it was unusable, and how many
log entries were re-applied).  A snapshot that cannot be used never stops a restart: the log is the
truth.

Recovery applies the log as the sequencer (``store.sequencer``) does, through ``apply_logged``: the
engine is deterministic, so a command that raised when it was first applied raises again at the same
point of the replay, and the state rebuilt is the one the server had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import Response
from perpbox.store import snapshot as snapshots
from perpbox.store.log import CommandLog
from perpbox.store.nonces import NonceWindows
from perpbox.store.readmodels import ReadModels

# the sequencer's logger: a restart's report is the venue's to tell (``perpbox serve`` shows it on stderr)
logger = logging.getLogger("perpbox.venue")


@dataclass
class Recovered:
    """The state the sequencer runs on: engine, read models, nonce windows, last sequence number and clock."""

    ex: Exchange
    rm: ReadModels
    nonces: NonceWindows
    seq: int
    ts: int


@dataclass(frozen=True)
class RecoveryReport:
    """How a state was recovered: from which snapshot (or why not), and how much log after it."""

    replayed: int  # log entries re-applied
    snapshot_seq: int | None = None  # the newest snapshot's sequence number (None: there is none)
    status: str = "none"  # none | loaded | unusable (it could not be used) | skipped (not asked for)
    reason: str | None = None  # why it was not used

    def __str__(self) -> str:
        if self.status == "loaded":
            return f"snapshot at seq {self.snapshot_seq} loaded, {self.replayed} log entries re-applied"
        if self.status == "unusable":
            return (f"snapshot at seq {self.snapshot_seq} unusable ({self.reason}): re-applied the whole log "
                    f"({self.replayed} entries)")
        if self.status == "skipped":
            return f"snapshot at seq {self.snapshot_seq} not used ({self.reason}): re-applied {self.replayed} entries"
        if self.replayed == 0:
            return "no snapshot, empty log: a new exchange"
        return f"no snapshot: re-applied the whole log ({self.replayed} entries)"


def encode_snapshot(state: Recovered) -> tuple[str, bytes]:
    """The state hash and the snapshot body of ``state`` (``store.snapshot``'s format)."""
    digest = state.ex.state_hash()
    body = snapshots.dump({"ex": state.ex, "rm": state.rm, "nonces": state.nonces},
                          {"seq": state.seq, "ts": state.ts, "hash": digest})
    return digest, body


def decode_snapshot(seq: int, digest: str, body: bytes) -> Recovered:
    """The state in a snapshot row; ``SnapshotError`` saying why it cannot be used."""
    root, meta = snapshots.load(body)
    if not isinstance(root, dict) or not isinstance(meta, dict):
        raise snapshots.SnapshotError("not a venue snapshot")
    ex, rm, nonces = root.get("ex"), root.get("rm"), root.get("nonces")
    if not (isinstance(ex, Exchange) and isinstance(rm, ReadModels) and isinstance(nonces, NonceWindows)):
        raise snapshots.SnapshotError("not a venue snapshot")
    if meta.get("seq") != seq or meta.get("hash") != digest or not isinstance(meta.get("ts"), int):
        raise snapshots.SnapshotError("its header does not match its row")
    actual = ex.state_hash()
    if actual != digest:
        raise snapshots.SnapshotError(f"state hash {actual[:12]}… is not the stored {digest[:12]}…")
    return Recovered(ex, rm, nonces, seq, meta["ts"])


def apply_logged(state: Recovered, cmd: C.Command) -> tuple[list[V.Event], Response | None, Exception | None]:
    """Apply a logged command to the engine and fold its events into the read models, as the
    sequencer and recovery both do: ``(events, typed response, None)``, or ``([], None, error)`` when
    the engine or a read model raised (the exception is returned, not raised: the command is in the
    log, and re-applying the log must fail the same way at the same point, not stop)."""
    try:
        outcome = state.ex.execute(cmd)
        state.rm.apply(outcome.events, state.ex.reads.margin_prices(), state.ex)
    except Exception as e:
        return [], None, e
    return outcome.events, outcome.response, None


def recover(log: CommandLog, progress: Callable[[int, int], None] | None = None,
            upto: int | None = None, use_snapshot: bool = True) -> tuple[Recovered, RecoveryReport]:
    """State from the newest snapshot, if it is usable, plus the log after it (up to sequence
    number ``upto``); returns it and the report of what was loaded and re-applied."""
    state = None
    snap = log.latest_snapshot()
    status, reason = "none", None
    if snap is not None:
        seq, digest, body = snap
        status = "skipped"
        if not use_snapshot:
            reason = "--full"
        elif upto is not None and seq > upto:
            reason = f"after --upto {upto}"
        else:
            status = "unusable"
            if seq > log.last_seq:
                reason = f"past the end of the log (seq {log.last_seq})"
            else:
                try:
                    state = decode_snapshot(seq, digest, body)
                    status = "loaded"
                except snapshots.SnapshotError as e:
                    reason = str(e)
                except Exception as e:  # a bug in the codec must not stop a restart: the log is the truth
                    reason = f"{type(e).__name__}: {e}"
    if state is None:
        state = Recovered(Exchange(), ReadModels(), NonceWindows(), 0, 0)
    total = log.count(state.seq)
    done = 0
    for entry in log.read(state.seq):
        if upto is not None and entry.seq > upto:
            break
        _, _, error = apply_logged(state, entry.command)
        if error is not None:
            logger.error("re-applying seq %d (%s) raised %s: %s", entry.seq, type(entry.command).__name__,
                         type(error).__name__, error)
        if entry.signer is not None and entry.nonce is not None:
            state.nonces.use(entry.signer, entry.nonce)
        state.seq, state.ts = entry.seq, max(state.ts, entry.command.ts)
        done += 1
        if progress is not None and done % 10_000 == 0:
            progress(done, total)
    return state, RecoveryReport(done, None if snap is None else snap[0], status, reason)
