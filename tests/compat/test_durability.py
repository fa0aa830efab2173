"""Durability of ``perpbox serve``: ``kill -9`` at an exact point loses no acknowledged action,
restarts load the snapshot and re-apply only the log after it, and the log replays to the state
hash the server reported.

The kill point is deterministic: the venue's test hook (``PERPBOX_TEST_HOOK``, see ``store.sequencer``)
is a fault point in the log writer that stops the sequencer for good at a named stage of the first
batch that holds an action signed by a trigger wallet (``before-commit`` or ``after-commit``), and
the test kills the server there, while clients from many wallets place, cancel, transfer and change
leverage.  The ordering under test is the real sequencer's: with it nothing is answered before its
commit, and nothing acknowledged is lost.  A sequencer that acknowledged before committing (the
planted ``MUTANT``) answers the trigger before the ``before-commit`` stop; the test waits for that
answer, kills, and the restarted server lacks the acknowledged order — on every run.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from perpbox.store.snapshot import FORMAT_VERSION

from .conftest import Server, wait_until

FUND = Decimal("100000")
N_CLIENTS = 6
ACTIONS_EACH = 12  # acknowledged actions per client before the trigger fires (3 of each kind)
SNAPSHOT_EVERY = 50  # so the restart after the kill loads a snapshot and re-applies the tail
QUIET = ("--no-agents", "--feed", "none", "--tick-interval", "0")  # a restarted server changes nothing by itself
LEVERAGE_COIN = "ETH"


def _replay(data: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "perpbox.cli", "replay", str(data), *args],
                          capture_output=True, text=True, check=True).stdout


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _banner(srv: Server) -> str:
    return _one_line((srv.data_dir.parent / f"server-{srv.port}.log").read_text())


def _log_seqs(data: Path) -> tuple[int, int | None]:
    """The log's last sequence number and the newest snapshot's (read-only, after the server died)."""
    db = sqlite3.connect(f"file:{data / 'perpbox.db'}?mode=ro", uri=True)
    try:
        last = db.execute("SELECT MAX(seq) FROM log").fetchone()[0]
        snap = db.execute("SELECT MAX(seq) FROM snapshot").fetchone()[0]
    finally:
        db.close()
    return int(last), snap


# ==================================================================================================
# many clients: orders, cancels, transfers, leverage changes
# ==================================================================================================
@dataclass
class Client:
    """One SDK client's acknowledged actions, and the one it had in flight when the server died."""

    wallet: Any
    ex: Exchange
    index: int
    acked: list[tuple[str, Any]] = field(default_factory=list)
    inflight: tuple[str, Any] | None = None
    error: str | None = None

    def run(self, stop: threading.Event) -> None:
        k = 0
        oid = 0
        while not stop.is_set():
            kind = ("order", "cancel", "send", "leverage")[k % 4]
            cycle = k // 4
            try:
                if kind == "order":
                    px = 50_000 + 100 * self.index + cycle  # far below the mark: rests, never fills
                    self.inflight = ("order", None)
                    res = self.ex.order("BTC", True, 0.001, px, {"limit": {"tif": "Gtc"}})
                    oid = res["response"]["data"]["statuses"][0]["resting"]["oid"]
                    self.acked.append(("order", oid))
                elif kind == "cancel":
                    if cycle % 2 == 0:  # every other order is cancelled
                        self.inflight = ("cancel", oid)
                        res = self.ex.cancel("BTC", oid)
                        assert res["response"]["data"]["statuses"][0] == "success", res
                        self.acked.append(("cancel", oid))
                elif kind == "send":
                    amount = Decimal(1 + self.index) + Decimal(cycle) / 100
                    self.inflight = ("send", amount)
                    res = self.ex.usd_transfer(float(amount), SINK.address)
                    assert res["status"] == "ok", res
                    self.acked.append(("send", amount))
                else:
                    lev = 2 + (cycle + self.index) % 8
                    self.inflight = ("leverage", lev)
                    res = self.ex.update_leverage(lev, LEVERAGE_COIN, True)
                    assert res["status"] == "ok", res
                    self.acked.append(("leverage", lev))
            except AssertionError as e:
                self.error = f"{kind}: {e}"
                return
            except Exception:
                return  # the server died under us: this action was never acknowledged
            self.inflight = None
            k += 1


SINK = Account.create()


def lost_acknowledged(info: Info, clients: list[Client], trigger: tuple[str, int, Any] | None) -> list[Any]:
    """Every acknowledged action whose effect the restarted server does not show.  An action still
    in flight at the kill may or may not have been committed: both outcomes are accepted."""
    lost: list[Any] = []
    sent_to_sink = Decimal(0)
    maybe_to_sink = Decimal(0)
    for c in clients:
        addr = c.wallet.address
        live = {o["oid"] for o in info.open_orders(addr)}
        cancelled = {oid for kind, oid in c.acked if kind == "cancel"}
        maybe_cancelled = {c.inflight[1]} if c.inflight is not None and c.inflight[0] == "cancel" else set()
        for kind, value in c.acked:
            if kind == "order" and value not in cancelled | maybe_cancelled and value not in live:
                lost.append((addr, "order", value))
            if kind == "cancel" and value in live:
                lost.append((addr, "cancel", value))
        sent = sum((v for kind, v in c.acked if kind == "send"), Decimal(0))
        maybe = c.inflight[1] if c.inflight is not None and c.inflight[0] == "send" else Decimal(0)
        sent_to_sink += sent
        maybe_to_sink += maybe
        value = Decimal(info.user_state(addr)["marginSummary"]["accountValue"])
        if value not in (FUND - sent, FUND - sent - maybe):
            lost.append((addr, "send", f"account value {value}, acknowledged sends {sent}"))
        levs = [v for kind, v in c.acked if kind == "leverage"]
        if levs:
            allowed = {levs[-1]}
            if c.inflight is not None and c.inflight[0] == "leverage":
                allowed.add(c.inflight[1])
            got = info.post("/info", {"type": "activeAssetData", "user": addr, "coin": LEVERAGE_COIN})
            if got["leverage"]["value"] not in allowed:
                lost.append((addr, "leverage", f"{got['leverage']['value']} not in {sorted(allowed)}"))
    sink = Decimal(info.user_state(SINK.address)["marginSummary"]["accountValue"])
    if not sent_to_sink <= sink <= sent_to_sink + maybe_to_sink:
        lost.append((SINK.address, "send", f"sink holds {sink}, acknowledged {sent_to_sink}"))
    if trigger is not None:
        addr, oid, _ = trigger
        if oid not in {o["oid"] for o in info.open_orders(addr)}:
            lost.append((addr, "order", oid))
    return lost


MUTANT = '''"""Planted by tests/compat/test_durability.py: the sequencer acknowledges before it commits."""
import asyncio

from perpbox.store import sequencer


async def _process(self, batch):
    entries, plans, _ = self._sequence(batch)
    self._apply_and_acknowledge(entries, plans)  # applied and answered ...
    if entries:
        await asyncio.to_thread(self.log.append, entries)  # ... before the batch is durable


sequencer.Venue._process = _process
'''


def _kill_at_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str,
                      mutant: bool = False) -> dict[str, Any]:
    """Clients trade under load (agents on); a trigger wallet's order trips the hook at ``stage``
    (``before-commit`` / ``after-commit``); ``kill -9`` there — after the trigger's answer if the
    server says it already answered (then the answer is on its way, and a sequencer that answers
    before committing is caught every time); restart; what was lost, and the state hashes to
    compare with ``perpbox replay``.  ``mutant``: the server runs with ``MUTANT`` planted."""
    data = tmp_path / "data"
    trigger_wallet = Account.create()
    with monkeypatch.context() as env:
        env.setenv("PERPBOX_TEST_HOOK", f"{stage}:{trigger_wallet.address}")
        if mutant:
            site = tmp_path / "mutant"
            site.mkdir()
            (site / "sitecustomize.py").write_text(MUTANT)  # imported by the server's interpreter at start
            env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        srv = Server(data, "--seed", "5", "--snapshot-every", str(SNAPSHOT_EVERY)).start()
    wallets = [Account.create() for _ in range(N_CLIENTS)]
    for w in [*wallets, trigger_wallet]:
        srv.fund(w.address, str(FUND))
    clients = [Client(w, Exchange(w, srv.url, timeout=60), i) for i, w in enumerate(wallets)]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    answer: dict[str, Any] = {}
    try:
        wait_until(lambda: all(len(c.acked) >= ACTIONS_EACH or c.error for c in clients), timeout=120)
        assert [c.error for c in clients if c.error] == []
        seen = srv.info({"type": "perpboxState"})  # before the trigger: everything up to here is committed

        def fire() -> None:
            try:
                answer["res"] = Exchange(trigger_wallet, srv.url, timeout=60).order(
                    "BTC", True, 0.001, 40_000, {"limit": {"tif": "Gtc"}})
            except Exception as e:  # the server died before answering
                answer["error"] = repr(e)

        trigger_thread = threading.Thread(target=fire, daemon=True)
        trigger_thread.start()
        marker = data / "test-hook.paused"
        wait_until(marker.exists, timeout=60)
        paused = json.loads(marker.read_text())
        assert paused["stage"] == stage
        if paused["trigger_answered"]:  # answered before the hook's point: wait until the client has it
            trigger_thread.join(60)
            assert "res" in answer, answer
        srv.stop(kill=True)  # SIGKILL at the hook's point
    finally:
        stop.set()
        srv.stop(kill=True)
        for t in threads:
            t.join(30)
    trigger_thread.join(30)
    assert "res" in answer or "error" in answer, answer
    last, snap = _log_seqs(data)
    trigger = None
    if "res" in answer:
        trigger = (trigger_wallet.address, answer["res"]["response"]["data"]["statuses"][0]["resting"]["oid"], None)

    srv2 = Server(data, *QUIET).start()
    try:
        info = Info(srv2.url, skip_ws=True)
        lost = lost_acknowledged(info, clients, trigger)
        trigger_open = info.open_orders(trigger_wallet.address)
        after = srv2.info({"type": "perpboxState"})
    finally:
        srv2.stop()
    return {"lost": lost, "seen": seen, "after": after, "data": data, "trigger": trigger, "paused": paused,
            "answer": answer, "trigger_open": trigger_open, "clients": clients, "last": last, "snap": snap,
            "banner": _banner(srv2)}


def _check_the_run(run: dict[str, Any]) -> None:
    """No acknowledged action lost; every kind of action acknowledged from every client; the
    restart loaded the snapshot and re-applied only the tail; ``perpbox replay`` gives the hashes
    the server reported before the kill and after the restart."""
    clients: list[Client] = run["clients"]
    assert {kind for c in clients for kind, _ in c.acked} == {"order", "cancel", "send", "leverage"}
    assert all(len(c.acked) >= ACTIONS_EACH for c in clients)
    assert run["lost"] == []
    assert "error" in run["answer"] and run["paused"]["trigger_answered"] is False  # nothing answered uncommitted
    last, snap = run["last"], run["snap"]
    assert snap is not None and 0 < snap < last, (snap, last)
    assert f"Start snapshot at seq {snap} loaded, {last - snap} log entries re-applied" in run["banner"]
    seen, after = run["seen"], run["after"]
    assert after["seq"] == last
    assert f"state_hash={seen['stateHash']}" in _replay(run["data"], "--upto", str(seen["seq"]))
    assert f"state_hash={after['stateHash']}" in _replay(run["data"], "--upto", str(after["seq"]))
    assert f"state_hash={after['stateHash']}" in _replay(run["data"], "--full", "--upto", str(after["seq"]))


def test_kill_9_at_the_commit_loses_no_acknowledged_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _kill_at_the_hook(tmp_path, monkeypatch, "before-commit")
    _check_the_run(run)
    assert run["last"] < run["paused"]["seq"]  # the trigger's batch was never written ...
    assert run["trigger_open"] == []  # ... so the restart does not have it (it was never acknowledged either)


def test_kill_9_between_commit_and_ack_loses_no_acknowledged_action(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = _kill_at_the_hook(tmp_path, monkeypatch, "after-commit")
    _check_the_run(run)
    assert run["last"] == run["paused"]["seq"]
    # the trigger's order was committed, never acknowledged: the log has it, so the restart has it
    assert [float(o["limitPx"]) for o in run["trigger_open"]] == [40000.0]


def test_kill_9_catches_a_sequencer_that_acknowledges_before_committing_every_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above against the planted bug (``MUTANT``): it reports the acknowledged trigger
    order as lost — deterministically, since the hook stops that batch before its commit and the
    kill waits for the answer the mutant already gave."""
    run = _kill_at_the_hook(tmp_path, monkeypatch, "before-commit", mutant=True)
    assert run["paused"]["trigger_answered"] is True
    addr, oid, _ = run["trigger"]
    assert (addr, "order", oid) in run["lost"]  # acknowledged, never committed: the check sees it
    assert run["trigger_open"] == []
    after = run["after"]
    assert f"state_hash={after['stateHash']}" in _replay(run["data"], "--upto", str(after["seq"]))


def test_the_servers_run_the_compiled_engine() -> None:
    """The servers here are started with this interpreter and environment: the compiled build."""
    if os.environ.get("PERPBOX_PURE") == "1":
        pytest.skip("a pure install was asked for")
    out = subprocess.run([sys.executable, "-c", "import perpbox.market.rules as r, perpbox.exchange.engine as e;"
                          "print(r.__file__); print(e.__file__)"], capture_output=True, text=True, check=True)
    files = out.stdout.split()
    assert len(files) == 2 and all(f.endswith(".so") for f in files), files


# ==================================================================================================
# snapshots
# ==================================================================================================
START = re.compile(r"Start snapshot at seq (\d+) loaded, (\d+) log entries re-applied")


def test_restart_after_kill_re_applies_only_the_log_after_the_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = Server(data, "--seed", "5", "--snapshot-every", "40").start()  # agents on
    w = Account.create()
    srv.fund(w.address)
    ex = Exchange(w, srv.url)
    while srv.info({"type": "perpboxState"})["seq"] <= 130:  # the log grows past a few snapshots
        placed = ex.order("BTC", True, 0.001, 50000, {"limit": {"tif": "Gtc"}})
        ex.cancel("BTC", placed["response"]["data"]["statuses"][0]["resting"]["oid"])
    oid = ex.order("BTC", True, 0.001, 60000, {"limit": {"tif": "Gtc"}})[
        "response"]["data"]["statuses"][0]["resting"]["oid"]
    srv.stop(kill=True)
    last, snap = _log_seqs(data)
    assert snap is not None and 0 < snap <= last

    srv2 = Server(data, *QUIET).start()
    try:
        m = START.search(_banner(srv2))
        assert m is not None, _banner(srv2)
        assert (int(m[1]), int(m[2])) == (snap, last - snap)
        assert last - snap < last  # not the whole log
        assert f"perpbox.venue: snapshot at seq {snap} loaded, {last - snap} log entries re-applied" in _banner(srv2)
        assert [o["oid"] for o in Info(srv2.url, skip_ws=True).open_orders(w.address)] == [oid]
        after = srv2.info({"type": "perpboxState"})
        assert after["seq"] == last
        out = _replay(data)  # while it runs: the snapshot it loaded is still the newest
    finally:
        srv2.stop()
    assert f"snapshot at seq {snap} loaded, {last - snap} log entries re-applied" in out.splitlines()
    assert f"state_hash={after['stateHash']}" in out
    assert f"state_hash={after['stateHash']}" in _replay(data, "--full")


def _server_with_one_resting_order(data: Path) -> tuple[Server, Any, int]:
    """A quiet server in ``data`` with one funded wallet holding one resting BTC bid (its oid)."""
    srv = Server(data, "--no-agents", "--feed", "none").start()
    w = Account.create()
    srv.fund(w.address)
    oid = Exchange(w, srv.url).order("BTC", True, 0.001, 60000, {"limit": {"tif": "Gtc"}})[
        "response"]["data"]["statuses"][0]["resting"]["oid"]
    return srv, w, oid


def test_clean_stop_writes_a_snapshot_and_restart_resumes_from_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv, w, oid = _server_with_one_resting_order(data)
    before = srv.info({"type": "perpboxState"})
    srv.stop()  # SIGTERM: clean shutdown takes a snapshot
    last, snap = _log_seqs(data)
    assert snap == last >= before["seq"]
    out = _replay(data, "--upto", str(before["seq"]))
    assert f"state_hash={before['stateHash']}" in out
    srv2 = Server(data, "--no-agents", "--feed", "none").start()
    try:
        assert f"Start snapshot at seq {snap} loaded, 0 log entries re-applied" in _banner(srv2)
        assert [o["oid"] for o in Info(srv2.url, skip_ws=True).open_orders(w.address)] == [oid]
    finally:
        srv2.stop()


def test_an_unusable_snapshot_is_reported_and_the_whole_log_re_applied(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv, w, oid = _server_with_one_resting_order(data)
    srv.stop()
    last, snap = _log_seqs(data)
    assert snap == last
    db = sqlite3.connect(data / "perpbox.db")  # a snapshot of a format this build does not read
    body = db.execute("SELECT body FROM snapshot").fetchone()[0]
    header = f"PERPBOX-SNAPSHOT {FORMAT_VERSION}\n".encode()
    db.execute("UPDATE snapshot SET body = ?", (body.replace(header, b"PERPBOX-SNAPSHOT 99\n", 1),))
    db.commit()
    db.close()
    expected = (f"snapshot at seq {snap} unusable (format version 99; this build reads version {FORMAT_VERSION}): "
                f"re-applied the whole log ({last} entries)")
    srv2 = Server(data, "--no-agents", "--feed", "none").start()
    try:
        assert f"Start {expected}" in _banner(srv2)
        assert f"perpbox.venue: {expected}" in _banner(srv2)  # and in the log
        assert [o["oid"] for o in Info(srv2.url, skip_ws=True).open_orders(w.address)] == [oid]
        after = srv2.info({"type": "perpboxState"})
    finally:
        srv2.stop()
    assert f"state_hash={after['stateHash']}" in _replay(data, "--full", "--upto", str(after["seq"]))
