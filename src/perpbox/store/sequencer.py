"""The sequencer: the running exchange's one writer — engine, durable log, read models and subscribers.

The sequencer (``Venue.run``) is the only code that applies commands.  Requests enqueue
submissions; the sequencer takes whatever is queued (up to ``MAX_BATCH``), stamps each with the
server time (never decreasing), checks signed actions' nonces, writes the batch to the command log
in one transaction (group commit, see ``store.log`` for the fsync policy), and only then applies
the commands, folds their events into the read models, answers the submitters and hands the events
to subscribers.  Reads (``/info``) see the engine between batches, never half a command.

Restart: ``Venue`` starts from ``store.recovery`` (the newest usable snapshot, then the log after
it), which says what it loaded in its ``RecoveryReport``.  A snapshot is taken every
``snapshot_every`` commands (``perpbox serve --snapshot-every``) and on a clean shutdown, only
between batches (never while one is being written).

Failures: an exception while a batch is stamped, nonce-checked, encoded or written leaves the state
as it was before the batch (sequence number, clock, nonce windows) and nothing of it in the log;
each of its submissions is then tried on its own, so only the one that fails gets the error
(``SequencerError``: ``/exchange`` answers 422 with it).  An exception while a committed command is
applied (an engine or read-model bug) is logged and answered as an error to that submission only;
the other commands go on.  Recovery applies the log the same way (``store.recovery.apply_logged``):
the engine is deterministic, so a replay fails at the same point and rebuilds the state the server
had.  A failing subscriber or snapshot is logged.  In every case the sequencer keeps running.

Test hook (``PERPBOX_TEST_HOOK=STAGE:ADDRESS``, for the durability tests only): a fault point at a
named stage of the first batch holding a submission signed by ``ADDRESS``.  It wraps the log's
``append`` (nothing else: the ordering under test is the plain ``_process``) and there blocks the
sequencer for good — ``before-commit``: before the batch's transaction, ``after-commit``: after it
committed — having written ``DATA_DIR/test-hook.paused`` (JSON: the stage, the batch's last
sequence number, and whether a submission of ``ADDRESS`` in the batch was already answered), so a
test can ``kill -9`` the server there.  With the correct order nothing in a batch is answered before
its commit, so ``before-commit`` loses only unanswered commands; a sequencer that acknowledged
before committing would have answered the trigger already (the marker says so, the test waits for
that answer before the kill), and the restarted server lacks what was acknowledged — every run.
Without the variable nothing is wrapped.

Garbage collection: the exchange state is large and long-lived and barely ever forms reference
cycles, yet CPython's full collections walk all of it (plus every loaded module) again and again as
it grows — several percent of the CPU per order under load.  So after recovery and after each
periodic snapshot the venue collects once and then freezes the heap (``gc.freeze``): what exists
then is left out of later collections, which only walk what was made since.  It also runs the
automatic collections less often (``GC_THRESHOLDS``): an order leaves a few long-lived containers
behind (the order, its events, its response), so at CPython's default of a young collection every
700 new containers the collector mostly re-walks live orders and events, and each of those walks
touches every object they point to.  Measured on ``bench/engine.py``: with the defaults the engine
spent ~30% of its time in the collector (0.99 s of 3.3 s for 200,000 orders, 0.76 s of it in seven
full collections), against ~15% for pyorderbook.  Full collections are left to the venue itself,
which runs one at every snapshot.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from perpbox.config import ExchangeConfig
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import backstop_address
from perpbox.exchange.results import Response
from perpbox.store import snapshot as snapshots
from perpbox.store.log import CommandLog, LogEntry
from perpbox.store.nonces import NonceWindows
from perpbox.store.readmodels import ReadModels
from perpbox.store.recovery import apply_logged, encode_snapshot, recover

MAX_BATCH = 1024
SNAPSHOT_EVERY = 50_000  # commands between snapshots
TEST_HOOK_ENV = "PERPBOX_TEST_HOOK"
TEST_HOOK_STAGES = ("before-commit", "after-commit")
TEST_HOOK_MARKER = "test-hook.paused"
logger = logging.getLogger("perpbox.venue")


@dataclass
class Submission:
    commands: list[C.Command]
    signer: str | None
    nonce: int | None
    future: asyncio.Future[tuple[list[Response], str | None]] = field(repr=False)


@dataclass
class _Control:
    """Work on the whole state, run by the sequencer between batches (``Venue.rollback``)."""

    work: Callable[[], Any]
    future: asyncio.Future[Any] = field(repr=False)


_Plan = tuple[Submission, list[C.Command], bool, int]  # submission, its commands, padded, its last seq


class _NotCommitted(Exception):
    """A batch failed before its commit (the cause is chained); ``_unsequence`` has run."""


class _Undo:
    """What ``_sequence`` changed, to put back if the batch is not committed: the sequence number,
    the clock and the nonce windows of the signers it used (a copy of each, taken before its first use)."""

    __slots__ = ("seq", "ts", "windows")

    def __init__(self, seq: int, ts: int, windows: dict[str, tuple[list[int], set[int]] | None]) -> None:
        self.seq, self.ts, self.windows = seq, ts, windows

    def save_window(self, nonces: NonceWindows, signer: str) -> None:
        if signer not in self.windows:
            heap = nonces._kept.get(signer)
            self.windows[signer] = None if heap is None else (heap[:], set(nonces._sets[signer]))

    def restore_windows(self, nonces: NonceWindows) -> None:
        for signer, window in self.windows.items():
            if window is None:
                nonces._kept.pop(signer, None)
                nonces._sets.pop(signer, None)
            else:
                nonces._kept[signer], nonces._sets[signer] = window


def _describe(e: BaseException | None) -> str:
    return "unknown" if e is None else f"{type(e).__name__}: {e}"


# Automatic collection thresholds once the heap is settled (module doc); CPython's are (700, 10, 10).
# A young collection every 50,000 new containers (a few MB of cyclic garbage at most); a middle one
# every 20 of those; full ones after 100 middle ones, in practice at the venue's own collection at
# every snapshot (SNAPSHOT_EVERY).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_heap(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Collect cycles once, keep everything alive now out of later collections, and set how often
    the automatic collections run (module doc)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SequencerError(Exception):
    """A submission the sequencer could not carry out (module doc: Failures); the message says
    whether it is in the log."""


def bootstrap_commands(config: ExchangeConfig, deployers: dict[str, str]) -> list[C.Command]:
    """The commands that list a fresh exchange's markets (logged like everything else)."""
    cmds: list[C.Command] = []
    for m in config.markets:
        cmds.append(C.AddMarket(ts=0, spec=m.spec, mark_px=m.price))
    for dex in config.dexes:
        for m in dex.markets:
            cmds.append(C.AddMarket(ts=0, spec=m.spec, mark_px=m.price, deployer=deployers[dex.name],
                                    full_name=dex.full_name))
    return cmds


def backstop_deposits(config: ExchangeConfig) -> list[C.Command]:
    """The backstop liquidator vaults' starting capital (main dex: index 0; HIP-3 dexes 1, 2, …).
    A deposit lands on the first dex, so a HIP-3 dex's vault then sends it to its dex (``sendAsset``):
    each dex's liquidations are backed by that dex's collateral only."""
    out: list[C.Command] = []
    if config.backstop_usd > 0:
        out.append(C.Deposit(ts=0, user=backstop_address(0), usd=config.backstop_usd))
    for i, d in enumerate(config.dexes, start=1):
        if d.backstop_usd > 0:
            vault = backstop_address(i)
            out += [C.Deposit(ts=0, user=vault, usd=d.backstop_usd),
                    C.SendAsset(ts=0, user=vault, src=vault, dst=vault, src_dex="", dst_dex=d.name, usd=d.backstop_usd)]
    return out


class Venue:
    """Engine + log + read models + subscribers, driven by the sequencer task."""

    def __init__(self, data_dir: Path, fsync: bool = True, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.data_dir = data_dir
        self.log = CommandLog(data_dir, fsync=fsync)
        self.state, self.report = recover(self.log)
        self.replayed = self.report.replayed
        if self.report.status == "unusable":
            logger.warning("%s", self.report)
        else:
            logger.info("%s", self.report)
        settle_heap()
        self.applied_seq = self.state.seq  # state.seq runs ahead while a batch is being written
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self.queue: asyncio.Queue[Submission | _Control] | None = None
        self.listeners: list[Callable[[list[V.Event]], None]] = []
        self.running = False
        hook = os.environ.get(TEST_HOOK_ENV)
        if hook:
            self._install_test_hook(hook)

    @property
    def ex(self) -> Exchange:
        return self.state.ex

    @property
    def rm(self) -> ReadModels:
        return self.state.rm

    def now(self) -> int:
        """Server time in ms, never before the last sequenced command."""
        return max(self.state.ts, wall_ms())

    # -- submitting -----------------------------------------------------------------------------------
    async def submit(self, commands: list[C.Command], signer: str | None = None,
                     nonce: int | None = None) -> tuple[list[Response], str | None]:
        """Sequence ``commands`` (timestamps are overwritten); returns the engine's typed response
        for each (``exchange.results``) and a nonce error (then nothing was applied)."""
        if self.queue is None:
            raise RuntimeError("the venue is not running")
        fut: asyncio.Future[tuple[list[Response], str | None]] = asyncio.get_running_loop().create_future()
        await self.queue.put(Submission(commands, signer, nonce, fut))
        return await fut

    # -- the sequencer ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.queue = asyncio.Queue()
        self.running = True
        try:
            while True:
                first = await self.queue.get()
                control = first if isinstance(first, _Control) else None
                batch = [] if control is not None else [first]
                while control is None and len(batch) < MAX_BATCH and not self.queue.empty():
                    item = self.queue.get_nowait()
                    if isinstance(item, _Control):
                        control = item  # after the submissions queued before it
                    else:
                        batch.append(item)
                if batch:
                    await self._step(batch)
                if control is not None:
                    try:
                        control.future.set_result(control.work())
                    except Exception as e:
                        control.future.set_exception(e)
        finally:
            self.running = False

    async def _step(self, batch: list[Submission]) -> None:
        """``_process`` that never raises (module doc: Failures): a batch that was not committed is
        tried again submission by submission; every submission left unanswered gets the error."""
        try:
            await self._process(batch)
            return
        except _NotCommitted as e:
            pending = [sub for sub in batch if not sub.future.done()]
            if len(pending) > 1:
                for sub in pending:
                    await self._step([sub])
                return
            logger.error("a submission was not committed (the state is as before it): %s", e.__cause__,
                         exc_info=e.__cause__)
            error = SequencerError(f"not recorded, nothing applied: {_describe(e.__cause__)}")
        except Exception as e:  # after the commit: the batch is in the log, the restart re-applies it
            logger.exception("the sequencer failed after committing up to seq %d (applied up to seq %d)",
                             self.state.seq, self.applied_seq)
            error = SequencerError(f"recorded, not fully applied: {_describe(e)}")
        for sub in batch:
            if not sub.future.done():
                sub.future.set_exception(error)

    async def _process(self, batch: list[Submission]) -> None:
        """Stamp and nonce-check, commit to the log, and only then apply and acknowledge."""
        entries, plans, undo = self._sequence(batch)
        if entries:
            try:
                await asyncio.to_thread(self.log.append, entries)
            except Exception as e:
                self._unsequence(undo)
                raise _NotCommitted from e
        self._apply_and_acknowledge(entries, plans)

    def _sequence(self, batch: list[Submission]) -> tuple[list[LogEntry], list[_Plan], _Undo]:
        """Stamp, nonce-check and number the batch's commands (the log entries to write, the plan
        of each accepted submission, and how to undo it all: ``_unsequence``)."""
        st = self.state
        undo = _Undo(st.seq, st.ts, {})
        entries: list[LogEntry] = []
        plans: list[_Plan] = []
        try:
            for sub in batch:
                ts = self.now()
                st.ts = ts
                if sub.signer is not None and sub.nonce is not None:
                    bad = st.nonces.check(sub.signer, sub.nonce, ts)
                    if bad is not None:
                        sub.future.set_result(([], bad))
                        continue
                    undo.save_window(st.nonces, sub.signer)
                    st.nonces.use(sub.signer, sub.nonce)
                cmds = [msgspec.structs.replace(c, ts=ts) for c in sub.commands]
                padded = False
                if not cmds and sub.signer is not None:  # nothing for the engine: log the nonce's use
                    cmds, padded = [C.Noop(ts=ts, user=sub.signer)], True
                for i, cmd in enumerate(cmds):
                    st.seq += 1
                    entries.append(LogEntry(st.seq, cmd, sub.signer if i == 0 else None,
                                            sub.nonce if i == 0 else None))
                plans.append((sub, cmds, padded, st.seq))
        except Exception as e:
            self._unsequence(undo)
            raise _NotCommitted from e
        return entries, plans, undo

    def _unsequence(self, undo: _Undo) -> None:
        """The state as it was before ``_sequence`` (nothing of the batch was committed)."""
        st = self.state
        st.seq, st.ts = undo.seq, undo.ts
        undo.restore_windows(st.nonces)

    def _apply_and_acknowledge(self, entries: list[LogEntry], plans: list[_Plan]) -> None:
        st = self.state
        published: list[V.Event] = []
        for sub, cmds, padded, last_seq in plans:
            responses: list[Response] = []
            error: SequencerError | None = None
            for i, cmd in enumerate(cmds):
                seq = self.applied_seq = last_seq - len(cmds) + 1 + i
                events, response, failed = apply_logged(st, cmd)
                if failed is not None:
                    logger.error("applying seq %d (%s) raised %s: %s", seq, type(cmd).__name__,
                                 type(failed).__name__, failed, exc_info=failed)
                    error = error or SequencerError(f"recorded (seq {seq}), failed while applied: {_describe(failed)}")
                if response is not None:  # None: it failed, and the submission is answered with the error
                    responses.append(response)
                published.extend(events)
            if not sub.future.done():
                if error is not None:
                    sub.future.set_exception(error)
                else:
                    sub.future.set_result(([] if padded else responses, None))
        if published:
            for listener in self.listeners:
                try:
                    listener(published)
                except Exception:  # one subscriber's bug must not stop the sequencer
                    logger.exception("an event listener failed")
        self._since_snapshot += len(entries)
        if self._since_snapshot >= self.snapshot_every:
            try:
                self.snapshot()
            except Exception:  # the log still holds everything: the next snapshot or the log will do
                logger.exception("snapshot at seq %d failed", st.seq)
            settle_heap()

    # -- rollback (the dev fault) -------------------------------------------------------------------------
    async def rollback(self, to_ms: int) -> tuple[int, int]:
        """Throw away every command sequenced after ``to_ms``, as a venue whose database was rolled
        back does (the outage night in ../shared/reference/hedging-bots.md §2): the log is cut there,
        the state rebuilt from it, and fills, orders and transfers in between are gone.  Time does
        not go back (the server's clock stays where it was).  Returns (the last seq kept, entries
        dropped).  A dev fault only (``perpbox serve --dev-faults``)."""
        if self.queue is None:
            raise RuntimeError("the venue is not running")
        fut: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Control(lambda: self._rollback(to_ms), fut))
        return await fut

    def _rollback(self, to_ms: int) -> tuple[int, int]:
        cut = self.log.seq_at(to_ms)
        dropped = self.state.seq - cut
        if dropped <= 0:
            return cut, 0
        state, report = recover(self.log, upto=cut)
        self.log.truncate(cut)
        state.ts = max(state.ts, self.state.ts)
        self.state, self.applied_seq, self._since_snapshot = state, state.seq, 0
        logger.warning("rolled back to seq %d (%d entries dropped; %s)", cut, dropped, report)
        return cut, dropped

    # -- test hook (module doc) -----------------------------------------------------------------------
    def _install_test_hook(self, spec: str) -> None:
        stage, _, address = spec.partition(":")
        if stage not in TEST_HOOK_STAGES or not address:
            raise ValueError(f"{TEST_HOOK_ENV}: expected STAGE:ADDRESS with STAGE one of {TEST_HOOK_STAGES}")
        signer = address.lower()
        plain_append = self.log.append
        current: list[list[Submission]] = [[]]

        async def process(batch: list[Submission]) -> None:
            current[0] = batch  # what the fault point reports on; the ordering is the class's own
            await type(self)._process(self, batch)

        def stop_here(entries: list[LogEntry]) -> None:  # in the log writer's thread
            answered = any(sub.signer == signer and sub.future.done() for sub in current[0])
            marker = self.data_dir / TEST_HOOK_MARKER
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps({"stage": stage, "seq": entries[-1].seq, "trigger_answered": answered}))
            tmp.replace(marker)
            logger.warning("test hook: stopped at %s of seq %d (until killed)", stage, entries[-1].seq)
            threading.Event().wait()

        def append(entries: list[LogEntry]) -> None:
            trigger = any(e.signer == signer for e in entries)
            if trigger and stage == "before-commit":
                stop_here(entries)
            plain_append(entries)
            if trigger and stage == "after-commit":
                stop_here(entries)

        self._process = process  # type: ignore[method-assign]
        self.log.append = append  # type: ignore[method-assign]

    # -- snapshots ------------------------------------------------------------------------------------
    def snapshot(self) -> bool:
        """Store a snapshot of the state as of the last applied command; False (logged) if none was
        taken: a batch is being written (its commands are not applied yet) or the state does not
        encode (the log still holds everything)."""
        st = self.state
        self._since_snapshot = 0
        if self.applied_seq != st.seq:
            logger.warning("snapshot skipped at seq %d: a batch up to seq %d is being written", self.applied_seq,
                           st.seq)
            return False
        try:
            digest, body = encode_snapshot(st)
        except snapshots.SnapshotError as e:
            logger.error("snapshot at seq %d failed: %s", st.seq, e)
            return False
        self.log.save_snapshot(st.seq, digest, body)
        logger.info("snapshot at seq %d written (%d bytes)", st.seq, len(body))
        return True

    def close(self) -> None:
        self.log.close()
