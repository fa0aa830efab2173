"""Snapshots (``store.snapshot``, ``store.recovery.recover``) in the installed build — the compiled one
by default — and across builds: a snapshot written by the pure modules loads in the compiled build
and the other way round, a restart re-applies only the log after the snapshot, and a snapshot that
cannot be used is refused with its reason and the whole log re-applied."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import pytest
import snapshot_kit as kit

import perpbox
import perpbox.exchange.engine as engine_module
from perpbox.book.book import OrderBook
from perpbox.book.order import Order, Tif
from perpbox.exchange import commands as C
from perpbox.market.rules import MarketRules
from perpbox.store import snapshot as S
from perpbox.store.log import CommandLog
from perpbox.store.recovery import decode_snapshot, encode_snapshot, recover
from perpbox.store.sequencer import Venue

KIT = Path(kit.__file__)
EVERY = 400  # commands between snapshots in these sessions
ROUNDS = 120  # about 1,300 commands


def _compiled() -> bool:
    return not engine_module.__file__.endswith(".py")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory written by a seeded session of the real venue (no snapshot at the end)."""
    data = tmp_path_factory.mktemp("session") / "data"
    v = asyncio.run(kit.drive(data, ROUNDS, EVERY))
    v.close()
    return data


def _copy(session: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(session, data)
    return data


@pytest.mark.skipif(os.environ.get("PERPBOX_PURE") == "1", reason="a pure install was asked for")
def test_these_tests_run_against_the_compiled_build() -> None:
    assert _compiled(), "the default install compiles the engine (setup.py); reinstall it"
    import perpbox.market.rules as rules

    assert rules.__file__.endswith(".so") and engine_module.__file__.endswith(".so")


def _compiled_classes(state: Any) -> set[str]:
    """The engine classes in ``state`` that come from a compiled module."""
    ex = state.ex
    objs = [ex, ex.ledger, next(iter(ex.board.rules.values())), next(iter(ex.board.books.values())),
            *list(ex.orders.orders.values())[:1], next(iter(ex.ledger.accounts.values()))]
    return {type(o).__qualname__ for o in objs if sys.modules[type(o).__module__].__file__.endswith(".so")}


@pytest.mark.skipif(not _compiled(), reason="the installed engine is the pure-Python one")
def test_pickle_cannot_rebuild_a_compiled_class_which_is_why_snapshots_are_not_pickles() -> None:
    spec = next(iter(_live_exchange().board.markets.values()))
    with pytest.raises(TypeError, match="missing required argument 'spec'"):
        pickle.loads(pickle.dumps(MarketRules(spec)))


def _live_exchange() -> Any:
    from perpbox.config import load_config
    from perpbox.exchange import Exchange

    ex = Exchange()
    for m in load_config(None).markets:
        ex.apply(C.AddMarket(ts=0, spec=m.spec, mark_px=m.price))
    return ex


def test_restart_loads_the_snapshot_and_re_applies_only_the_tail(session: Path, tmp_path: Path) -> None:
    data = _copy(session, tmp_path)
    log = CommandLog(data, fsync=False)
    last = log.last_seq
    snap = log.latest_snapshot()
    log.close()
    assert snap is not None and last > EVERY
    snap_seq = snap[0]
    assert 0 < last - snap_seq < EVERY  # snapshots every EVERY commands: less than that after the last one

    v = Venue(data)
    try:
        assert v.report.status == "loaded" and v.report.snapshot_seq == snap_seq
        assert v.report.replayed == v.replayed == last - snap_seq  # only the tail, not all `last`
        assert str(v.report) == f"snapshot at seq {snap_seq} loaded, {last - snap_seq} log entries re-applied"
        full, full_report = recover(v.log, use_snapshot=False)
        assert full_report.replayed == last
        assert str(full_report) == f"snapshot at seq {snap_seq} not used (--full): re-applied {last} entries"
        assert v.state.seq == full.seq == last
        assert v.ex.state_hash() == full.ex.state_hash()
        assert kit.graph_diff(kit.state_of(v.state), kit.state_of(full)) == []
    finally:
        v.close()


def test_a_snapshot_round_trip_gives_back_the_same_object_graph(session: Path, tmp_path: Path) -> None:
    log = CommandLog(_copy(session, tmp_path), fsync=False)
    state, _ = recover(log, use_snapshot=False)
    digest, body = encode_snapshot(state)
    back = decode_snapshot(state.seq, digest, body)
    if _compiled():  # the loaded objects are instances of the compiled classes, MarketRules included
        assert _compiled_classes(back) == _compiled_classes(state) >= {"Exchange", "Ledger", "MarketRules",
                                                                         "OrderBook", "Order", "Account"}
    assert back.ex.state_hash() == digest == state.ex.state_hash()
    assert kit.graph_diff(kit.state_of(back), kit.state_of(state)) == []  # rules and gates included
    markets = state.ex.board.markets.keys()
    assert back.ex.board.rules.keys() == markets and back.ex.controls.gates.keys() == markets
    # the loaded state goes on exactly like the original
    user = kit.CLIENTS[0]
    for cmd in [C.place(state.ts + 1, user, 0, False, 10 ** 9, 1), C.Tick(ts=state.ts + 60_000),
                C.Transfer(ts=state.ts + 60_001, src=user, dst=kit.CLIENTS[1], usd=7),
                C.CancelAll(ts=state.ts + 60_002, user=user)]:
        again, first = back.ex.execute(cmd), state.ex.execute(cmd)
        assert msgspec.json.encode(again.events) == msgspec.json.encode(first.events)
        assert again.response == first.response
        assert back.ex.state_hash() == state.ex.state_hash()


def test_the_codec_keeps_sharing_cycles_big_integers_and_plain_values() -> None:
    book = OrderBook(0)
    orders = [Order(i, "0xu", 0, True, 100 + i % 2, 5, 1, Tif.GTC) for i in range(1, 5)]
    for o in orders:
        book.add(o)
    root = {"book": book, "orders": {o.oid: o for o in orders}, "big": [2**80, -(2**70), 2**64 - 1, -(2**63)],
            "fr": Fraction(-7, 3), "q": deque([1, 2], maxlen=5), "s": {1, 2}, "f": frozenset({"a"}),
            ("k", 1): (1, "x", None, True, b"\x00", 1.5), "tif": Tif.IOC}
    back, meta = S.load(S.dump(root, {"seq": 3}))
    assert meta == {"seq": 3}
    assert kit.graph_diff(back, root) == []
    assert back["book"].orders[1] is back["orders"][1] and back["orders"][1].level.orders[1] is back["orders"][1]
    assert back["q"].maxlen == 5 and back["tif"] is Tif.IOC


def test_code_and_foreign_objects_are_not_written() -> None:
    with pytest.raises(S.SnapshotError, match="cannot store"):
        S.dump({"f": print}, {})
    with pytest.raises(S.SnapshotError, match="cannot store"):
        S.dump([threading.Lock()], {})


# -- refusals ----------------------------------------------------------------------------------------
def _replace_snapshot(data: Path, body: bytes, digest: str | None = None) -> tuple[int, int]:
    log = CommandLog(data, fsync=False)
    seq, old_digest, _ = log.latest_snapshot()  # type: ignore[misc]
    log.save_snapshot(seq, digest or old_digest, body)
    last = log.last_seq
    log.close()
    return seq, last


def _recover_reason(data: Path, caplog: pytest.LogCaptureFixture) -> tuple[Any, str]:
    with caplog.at_level(logging.WARNING, logger="perpbox.venue"):
        v = Venue(data)
    try:
        full, _ = recover(v.log, use_snapshot=False)
        assert v.ex.state_hash() == full.ex.state_hash()  # the whole log stands in for the snapshot
        assert v.report.replayed == v.log.last_seq
        warnings = [r.getMessage() for r in caplog.records if r.name == "perpbox.venue"]
        assert warnings == [str(v.report)]
        return v.report, str(v.report)
    finally:
        v.close()


def test_an_old_pickle_snapshot_is_reported_and_the_whole_log_re_applied(session: Path, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    data = _copy(session, tmp_path)
    seq, last = _replace_snapshot(data, pickle.dumps({"an": "old snapshot"}))
    report, text = _recover_reason(data, caplog)
    assert report.status == "unusable"
    assert text == (f"snapshot at seq {seq} unusable (a pickle (written before format 1)): re-applied the whole "
                    f"log ({last} entries)")


def test_a_snapshot_of_another_format_version_is_refused(session: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    data = _copy(session, tmp_path)
    log = CommandLog(data, fsync=False)
    body = log.latest_snapshot()[2]  # type: ignore[index]
    log.close()
    v = S.FORMAT_VERSION
    assert body.startswith(f"PERPBOX-SNAPSHOT {v}\n".encode())
    future = f"PERPBOX-SNAPSHOT {v + 1}\n".encode() + body[len(f"PERPBOX-SNAPSHOT {v}\n"):]
    with pytest.raises(S.SnapshotError, match=f"format version {v + 1}; this build reads version {v}"):
        S.load(future)
    seq, last = _replace_snapshot(data, future)
    _, text = _recover_reason(data, caplog)
    assert text == (f"snapshot at seq {seq} unusable (format version {v + 1}; this build reads version {v}): "
                    f"re-applied the whole log ({last} entries)")


def test_a_snapshot_whose_state_does_not_hash_to_the_stored_hash_is_refused(session: Path, tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    data = _copy(session, tmp_path)
    log = CommandLog(data, fsync=False)
    seq = log.latest_snapshot()[0]  # type: ignore[index]
    state, _ = recover(log, upto=seq, use_snapshot=False)
    log.close()
    state.ex.orders.next_oid += 1  # a state that is not the one the hash was taken of
    wrong = "ab" * 32
    _replace_snapshot(data, S.dump({"ex": state.ex, "rm": state.rm, "nonces": state.nonces},
                                   {"seq": seq, "ts": state.ts, "hash": wrong}), wrong)
    report, _ = _recover_reason(data, caplog)
    assert report.status == "unusable" and report.reason.startswith("state hash ")  # type: ignore[union-attr]


def _edit(body: bytes, edit: Any) -> bytes:
    head = body[:body.index(b"\n") + 1]
    parts = msgspec.msgpack.decode(body[len(head):], ext_hook=lambda code, data: msgspec.msgpack.Ext(code, bytes(data)))
    edit(*parts)
    return head + msgspec.msgpack.encode(parts)


def test_a_class_with_an_attribute_the_snapshot_lacks_refuses_it(session: Path, tmp_path: Path) -> None:
    log = CommandLog(_copy(session, tmp_path), fsync=False)
    seq, digest, body = log.latest_snapshot()  # type: ignore[misc]
    log.close()

    def drop(meta: Any, shapes: list[Any], nodes: list[Any], top: Any) -> None:
        for sid, (name, names) in enumerate(shapes):
            if name == "perpbox.ledger.ledger:Account":
                at = names.index("n_reduce_only")
                del names[at]
                for node in nodes:
                    if node[0] == "O" and node[1] == sid:
                        del node[2][at]

    with pytest.raises(S.SnapshotError, match="Account has attributes the snapshot lacks: n_reduce_only"):
        decode_snapshot(seq, digest, _edit(body, drop))


@pytest.mark.parametrize(("name", "message"), [("os:system", "refusing to load class os:system"),
                                               ("builtins:eval", "refusing to load class"),
                                               ("perpbox.ledger.ledger:Gone", "no longer exists")])
def test_only_existing_perpbox_classes_are_loaded(session: Path, tmp_path: Path, name: str, message: str) -> None:
    log = CommandLog(_copy(session, tmp_path), fsync=False)
    seq, digest, body = log.latest_snapshot()  # type: ignore[misc]
    log.close()

    def rename(meta: Any, shapes: list[Any], nodes: list[Any], top: Any) -> None:
        for shape in shapes:
            if shape[0] == "perpbox.ledger.ledger:Account":
                shape[0] = name

    with pytest.raises(S.SnapshotError, match=message):
        decode_snapshot(seq, digest, _edit(body, rename))


def test_no_snapshot_is_taken_while_a_batch_is_being_written(tmp_path: Path) -> None:
    v = Venue(tmp_path / "data", fsync=False)
    writing, release = threading.Event(), threading.Event()
    append = v.log.append

    def slow_append(entries: Any) -> None:
        writing.set()
        release.wait(30)
        append(entries)

    v.log.append = slow_append  # type: ignore[method-assign]

    async def main() -> None:
        run = asyncio.create_task(v.run())
        await asyncio.sleep(0)
        submit = asyncio.create_task(v.submit([C.Deposit(ts=0, user=kit.CLIENTS[0], usd=5)]))
        while not writing.is_set():
            await asyncio.sleep(0.01)
        run.cancel()  # a clean stop while the batch is being written: it is neither applied nor answered
        await asyncio.gather(run, return_exceptions=True)
        assert v.applied_seq == 0 < v.state.seq == 1
        assert v.snapshot() is False
        release.set()
        submit.cancel()
        await asyncio.gather(submit, return_exceptions=True)

    asyncio.run(main())
    v.close()
    log = CommandLog(tmp_path / "data", fsync=False)
    assert log.latest_snapshot() is None and log.last_seq == 1  # committed; the restart will apply it
    state, report = recover(log)
    assert str(report) == "no snapshot: re-applied the whole log (1 entries)"
    assert state.ex.ledger.accounts[kit.CLIENTS[0]].raw_usd == 5


# -- across builds ---------------------------------------------------------------------------------
def _kit(args: list[str], pure: Path | None, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pure)] if pure else []) or ""}
    if pure is None:
        env.pop("PYTHONPATH")
    out = subprocess.run([sys.executable, str(KIT), *args], capture_output=True, text=True, env=env, check=True,
                         cwd=cwd)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def pure_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pure = tmp_path_factory.mktemp("pure")
    shutil.copytree(Path(perpbox.__file__).parent, pure / "perpbox",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return pure


@pytest.mark.skipif(not _compiled(), reason="the installed engine is the pure-Python one")
@pytest.mark.parametrize(("writer", "reader"), [("pure", "compiled"), ("compiled", "pure")])
def test_a_snapshot_written_by_one_build_loads_in_the_other(tmp_path: Path, pure_sources: Path, writer: str,
                                                            reader: str) -> None:
    data = tmp_path / "data"
    wrote = _kit(["write", str(data), "80", "300"], pure_sources if writer == "pure" else None, tmp_path)
    assert wrote["build"] == writer and wrote["snapshot_seq"] is not None
    got = _kit(["check", str(data)], pure_sources if reader == "pure" else None, tmp_path)
    assert got["build"] == reader
    assert got["status"] == "loaded" and got["reason"] is None and got["snapshot_seq"] == wrote["snapshot_seq"]
    assert got["replayed"] == wrote["seq"] - wrote["snapshot_seq"] < got["full_replayed"] == wrote["seq"]
    assert got["hash"] == got["full_hash"] == wrote["hash"]
    assert got["diff"] == []
