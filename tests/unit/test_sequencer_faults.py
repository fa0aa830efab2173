"""The sequencer survives a batch that fails (``store.sequencer``, module doc: Failures): the submissions
it could not carry out get a ``SequencerError``, the others in the batch and every later request
are answered, and the state stays the one the log replays to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import snapshot_kit as kit

from perpbox.exchange import commands as C
from perpbox.exchange.results import OK
from perpbox.store.log import CommandLog, LogEntry
from perpbox.store.readmodels import ReadModels
from perpbox.store.recovery import recover
from perpbox.store.sequencer import SequencerError, Venue

A, B, POISON = kit.CLIENTS[0], kit.CLIENTS[1], kit.CLIENTS[2]


def _run(v: Venue, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        task = asyncio.create_task(v.run())
        await asyncio.sleep(0)
        try:
            await scenario()
            assert not task.done()  # the sequencer is still running
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())


async def _together(v: Venue, *subs: tuple[list[C.Command], str | None, int | None]) -> list[Any]:
    """Submit all at once: they are queued before the sequencer wakes, so they form one batch."""
    return await asyncio.gather(*(v.submit(cmds, signer, nonce) for cmds, signer, nonce in subs),
                                return_exceptions=True)


def _deposit(user: str, usd: Any = 5) -> list[C.Command]:
    return [C.Deposit(ts=0, user=user, usd=usd)]


def _same_as_a_replay(v: Venue) -> None:
    """The live state is the log's: a fresh recovery from it has the same engine, read models and
    nonce windows (object by object), and the sequencer's counters agree with the log."""
    assert v.state.seq == v.applied_seq == v.log.last_seq == v.log.count()
    again, report = recover(v.log)
    assert report.replayed == v.log.last_seq
    live, replayed = kit.state_of(v.state), kit.state_of(again)
    # the clock: the live one also saw the submissions that were refused (nothing of them is logged)
    assert live.pop("ts") >= replayed.pop("ts")
    assert kit.graph_diff(live, replayed) == []


def test_a_command_that_would_not_replay_fails_alone_and_the_rest_of_its_batch_goes_on(tmp_path: Path) -> None:
    v = Venue(tmp_path / "data", fsync=False)
    sizes: list[int] = []
    append = v.log.append

    def counting(entries: list[LogEntry]) -> None:
        sizes.append(len(entries))
        append(entries)

    v.log.append = counting  # type: ignore[method-assign]
    t = v.now()

    async def scenario() -> None:
        got = await _together(v, (_deposit(A), A, t), (_deposit(POISON, "5"), POISON, t + 1),  # a str: no replay
                              (_deposit(B), B, t + 2), (_deposit(A, 7), A, t + 3))
        assert sizes[0] == 4  # one batch of four, refused whole, then each on its own
        assert isinstance(got[1], SequencerError) and "not recorded, nothing applied" in str(got[1])
        assert "Deposit would not replay" in str(got[1])
        assert [got[0], got[2], got[3]] == [([OK], None)] * 3
        # the refused submission's nonce was not used: it can be used again
        assert await v.submit(_deposit(POISON), POISON, t + 1) == ([OK], None)
        assert await v.submit(_deposit(A), A, t + 3) == ([], f"Invalid nonce: duplicate nonce {t + 3}")

    _run(v, scenario)
    assert v.ex.ledger.accounts[A].raw_usd == 12 and v.ex.ledger.accounts[POISON].raw_usd == 5
    _same_as_a_replay(v)
    v.close()


def test_a_batch_the_log_cannot_take_is_rolled_back_and_answered_with_the_error(tmp_path: Path) -> None:
    v = Venue(tmp_path / "data", fsync=False)
    append = v.log.append
    broken = [True]

    def disk_full(entries: list[LogEntry]) -> None:
        if broken[0]:
            raise sqlite3.OperationalError("database or disk is full")
        append(entries)

    v.log.append = disk_full  # type: ignore[method-assign]
    t = v.now()

    async def scenario() -> None:
        got = await _together(v, (_deposit(A), A, t), (_deposit(B), None, None), ([], B, t))
        assert all(isinstance(g, SequencerError) and "disk is full" in str(g) for g in got), got
        assert v.state.seq == v.applied_seq == 0
        broken[0] = False
        # the same signed submissions, nonces and all, now go through: nothing of the failed batch stayed
        assert await _together(v, (_deposit(A), A, t), (_deposit(B), None, None), ([], B, t)) == [
            ([OK], None), ([OK], None), ([], None)]

    _run(v, scenario)
    _same_as_a_replay(v)
    v.close()


def test_a_submission_that_cannot_be_sequenced_fails_alone(tmp_path: Path) -> None:
    v = Venue(tmp_path / "data", fsync=False)
    t = v.now()

    async def scenario() -> None:
        not_a_command: Any = object()
        got = await _together(v, (_deposit(A), A, t), ([not_a_command], B, t), (_deposit(B), B, t + 1))
        assert got[0] == got[2] == ([OK], None)
        assert isinstance(got[1], SequencerError) and "not recorded" in str(got[1])
        assert await v.submit(_deposit(B), B, t) == ([OK], None)  # B's nonce t was given back

    _run(v, scenario)
    _same_as_a_replay(v)
    v.close()


def test_a_failure_while_applying_a_committed_command_is_answered_and_the_sequencer_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    v = Venue(tmp_path / "data", fsync=False)
    fold = v.rm.apply

    def buggy(events: Any, prices: Any, ex: Any = None) -> None:
        if any(getattr(e, "user", None) == POISON for e in events):
            raise KeyError("a read-model bug")
        fold(events, prices, ex)

    monkeypatch.setattr(v.state.rm, "apply", buggy)
    seen: list[int] = []
    v.listeners.append(lambda events: (_ for _ in ()).throw(RuntimeError("a subscriber bug")))
    v.listeners.append(lambda events: seen.append(len(events)))

    async def scenario() -> None:
        got = await _together(v, (_deposit(A), None, None), ([*_deposit(POISON), *_deposit(POISON, 3)], None, None),
                              (_deposit(B), None, None))
        assert got[0] == got[2] == ([OK], None)
        assert isinstance(got[1], SequencerError) and "recorded (seq 2), failed while applied" in str(got[1])
        assert await v.submit(_deposit(B)) == ([OK], None)

    with caplog.at_level(logging.ERROR, logger="perpbox.venue"):
        _run(v, scenario)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("applying seq 2 (Deposit) raised KeyError") for m in messages), messages
    assert "an event listener failed" in messages and seen  # the next listener still had the events
    # both POISON deposits are in the log and in the engine (the engine applied them before the read
    # models failed): the engine is the log's
    assert v.ex.ledger.accounts[POISON].raw_usd == 8
    assert v.state.seq == v.applied_seq == v.log.last_seq == 5
    again, _ = recover(v.log)
    assert again.ex.state_hash() == v.ex.state_hash()
    v.close()


def test_recovery_applies_a_failing_command_the_same_way_and_goes_on(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    log = CommandLog(tmp_path / "data", fsync=False)
    log.append([LogEntry(i + 1, cmd) for i, cmd in enumerate([*_deposit(A), *_deposit(POISON), *_deposit(B)])])
    fold = ReadModels.apply

    def buggy(self: ReadModels, events: Any, prices: Any, ex: Any = None) -> None:
        if any(getattr(e, "user", None) == POISON for e in events):
            raise KeyError("a read-model bug")
        fold(self, events, prices, ex)

    monkeypatch.setattr(ReadModels, "apply", buggy)
    with caplog.at_level(logging.ERROR, logger="perpbox.venue"):
        state, report = recover(log)
    assert report.replayed == state.seq == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["re-applying seq 2 (Deposit) raised KeyError: 'a read-model bug'"]
    assert {u: state.ex.ledger.accounts[u].raw_usd for u in (A, POISON, B)} == {A: 5, POISON: 5, B: 5}
    log.close()


def test_a_failed_snapshot_is_logged_and_the_sequencer_goes_on(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    v = Venue(tmp_path / "data", fsync=False, snapshot_every=2)

    def fail(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    v.log.save_snapshot = fail  # type: ignore[method-assign]

    async def scenario() -> None:
        for usd in (1, 2, 3):
            assert await v.submit(_deposit(A, usd)) == ([OK], None)

    with caplog.at_level(logging.ERROR, logger="perpbox.venue"):
        _run(v, scenario)
    assert any(r.getMessage() == "snapshot at seq 2 failed" for r in caplog.records)
    assert v.ex.ledger.accounts[A].raw_usd == 6
    _same_as_a_replay(v)
    v.close()


def test_a_failed_log_write_leaves_nothing_behind_and_the_log_usable(tmp_path: Path) -> None:
    log = CommandLog(tmp_path / "data", fsync=False)
    log.append([LogEntry(1, _deposit(A)[0])])
    with pytest.raises(sqlite3.IntegrityError):  # seq 1 again, after seq 2: the whole batch is rolled back
        log.append([LogEntry(2, _deposit(B)[0]), LogEntry(1, _deposit(B)[0])])
    assert log.last_seq == 1 and [e.seq for e in log.read()] == [1]
    with pytest.raises(ValueError, match="seq 2: Deposit would not replay"):
        log.append([LogEntry(2, _deposit(B, "5")[0])])
    log.append([LogEntry(2, _deposit(B)[0])])
    assert log.last_seq == 2 and [e.command for e in log.read()] == [*_deposit(A), *_deposit(B)]
    log.close()
    assert [e.seq for e in CommandLog(tmp_path / "data", fsync=False).read()] == [1, 2]
