"""The running exchange: one engine, one writer, a durable log, read models and subscribers.

The sequencer (``Venue.run``) is the only code that applies commands.  Requests enqueue
submissions; the sequencer takes whatever is queued (up to ``MAX_BATCH``), stamps each with the
server time (never decreasing), checks signed actions' nonces, writes the batch to the command log
in one transaction (group commit, see ``store.log`` for the fsync policy), and only then applies
the commands, folds their events into the read models, answers the submitters and hands the events
to subscribers.  Reads (``/info``) see the engine between batches, never half a command.

Restart: the newest snapshot whose state hash checks out, then the log after it.

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
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from perpbox.api.nonces import NonceWindows
from perpbox.api.readmodels import ReadModels
from perpbox.config import ExchangeConfig
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.mechanics import backstop_address
from perpbox.store.log import CommandLog, LogEntry

MAX_BATCH = 1024
SNAPSHOT_EVERY = 50_000  # commands between snapshots


@dataclass
class Submission:
    commands: list[C.Command]
    signer: str | None
    nonce: int | None
    future: asyncio.Future[tuple[list[Any], str | None]] = field(repr=False)


@dataclass
class Recovered:
    ex: Exchange
    rm: ReadModels
    nonces: NonceWindows
    seq: int
    ts: int


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


def recover(log: CommandLog, progress: Callable[[int, int], None] | None = None,
            upto: int | None = None) -> tuple[Recovered, int]:
    """State from the newest good snapshot plus the log after it (up to sequence number ``upto``);
    returns it and how many log entries were re-applied."""
    state = None
    snap = log.latest_snapshot()
    if snap is not None and (upto is None or snap[0] <= upto):
        seq, digest, body = snap
        try:
            loaded = pickle.loads(body)
            if isinstance(loaded, Recovered) and loaded.seq == seq and loaded.ex.state_hash() == digest:
                state = loaded
        except Exception:  # a snapshot that does not load is ignored: the log is the truth
            state = None
    if state is None:
        state = Recovered(Exchange(), ReadModels(), NonceWindows(), 0, 0)
    total = log.count(state.seq)
    done = 0
    for entry in log.read(state.seq):
        if upto is not None and entry.seq > upto:
            break
        events = state.ex.apply(entry.command)
        state.rm.apply(events, state.ex.prices)
        if entry.signer is not None and entry.nonce is not None:
            state.nonces.use(entry.signer, entry.nonce)
        state.seq, state.ts = entry.seq, max(state.ts, entry.command.ts)
        done += 1
        if progress is not None and done % 10_000 == 0:
            progress(done, total)
    return state, done


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
        self.log = CommandLog(data_dir, fsync=fsync)
        self.state, self.replayed = recover(self.log)
        settle_heap()
        self.applied_seq = self.state.seq  # state.seq runs ahead while a batch is being written
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self.queue: asyncio.Queue[Submission] | None = None
        self.listeners: list[Callable[[list[V.Event]], None]] = []
        self.running = False

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
                     nonce: int | None = None) -> tuple[list[Any], str | None]:
        """Sequence ``commands`` (timestamps are overwritten); returns the engine's response for
        each and a nonce error (then nothing was applied)."""
        if self.queue is None:
            raise RuntimeError("the venue is not running")
        fut: asyncio.Future[tuple[list[Any], str | None]] = asyncio.get_running_loop().create_future()
        await self.queue.put(Submission(commands, signer, nonce, fut))
        return await fut

    # -- the sequencer ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.queue = asyncio.Queue()
        self.running = True
        try:
            while True:
                batch = [await self.queue.get()]
                while len(batch) < MAX_BATCH and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                await self._process(batch)
        finally:
            self.running = False

    async def _process(self, batch: list[Submission]) -> None:
        st = self.state
        entries: list[LogEntry] = []
        plans: list[tuple[Submission, list[C.Command], bool, int]] = []
        for sub in batch:
            ts = self.now()
            st.ts = ts
            if sub.signer is not None and sub.nonce is not None:
                bad = st.nonces.check(sub.signer, sub.nonce, ts)
                if bad is not None:
                    sub.future.set_result(([], bad))
                    continue
                st.nonces.use(sub.signer, sub.nonce)
            cmds = [msgspec.structs.replace(c, ts=ts) for c in sub.commands]
            padded = False
            if not cmds and sub.signer is not None:  # nothing for the engine: log the nonce's use
                cmds, padded = [C.Noop(ts=ts, user=sub.signer)], True
            for i, cmd in enumerate(cmds):
                st.seq += 1
                entries.append(LogEntry(st.seq, cmd, sub.signer if i == 0 else None, sub.nonce if i == 0 else None))
            plans.append((sub, cmds, padded, st.seq))
        if entries:
            await asyncio.to_thread(self.log.append, entries)
        published: list[V.Event] = []
        for sub, cmds, padded, last_seq in plans:
            responses = []
            for i, cmd in enumerate(cmds):
                self.applied_seq = last_seq - len(cmds) + 1 + i
                events = st.ex.apply(cmd)
                st.rm.apply(events, st.ex.prices)
                responses.append(st.ex.last_response)
                published.extend(events)
            if not sub.future.done():
                sub.future.set_result(([] if padded else responses, None))
        if published:
            for listener in self.listeners:
                listener(published)
        self._since_snapshot += len(entries)
        if self._since_snapshot >= self.snapshot_every:
            self.snapshot()
            settle_heap()

    # -- snapshots ------------------------------------------------------------------------------------
    def snapshot(self) -> None:
        st = self.state
        self.log.save_snapshot(st.seq, st.ex.state_hash(), pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))
        self._since_snapshot = 0

    def close(self) -> None:
        self.log.close()
