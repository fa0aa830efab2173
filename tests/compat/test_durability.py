"""kill -9 during load, restart: every acknowledged action is still there, and the log replays to the
exact state hash the server reported before the kill."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from .conftest import Server


def test_kill_9_under_load_loses_no_acknowledged_action_and_replays_to_the_same_hash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = Server(data, "--seed", "5").start()  # agents on: the log grows under load while we trade
    wallet = Account.create()
    srv.fund(wallet.address, "1000000")
    ex = Exchange(wallet, srv.url)
    acked: list[int] = []
    snapshots: list[dict] = []
    stop = threading.Event()

    def trade() -> None:
        px = 50_000
        while not stop.is_set():
            try:
                res = ex.order("BTC", True, 0.001, px, {"limit": {"tif": "Gtc"}})
            except Exception:
                return  # the server died under us: that order was never acknowledged
            acked.append(res["response"]["data"]["statuses"][0]["resting"]["oid"])
            px += 1

    t = threading.Thread(target=trade)
    t.start()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 60
        while len(acked) < n:
            assert t.is_alive() and time.monotonic() < deadline, f"trading stopped after {len(acked)} orders"
            time.sleep(0.01)

    wait_for(60)
    snapshots.append(srv.info({"type": "perpboxState"}))
    wait_for(120)
    srv.stop(kill=True)  # SIGKILL mid-load
    stop.set()
    t.join(30)
    seen = snapshots[0]

    out = subprocess.run([sys.executable, "-m", "perpbox.cli", "replay", str(data), "--upto", str(seen["seq"])],
                         capture_output=True, text=True, check=True).stdout
    assert f"state_hash={seen['stateHash']}" in out

    srv2 = Server(data, "--seed", "5", "--no-agents").start()
    try:
        info = Info(srv2.url, skip_ws=True)
        live = {o["oid"] for o in info.open_orders(wallet.address)}
        assert set(acked) <= live, f"lost {sorted(set(acked) - live)}"
    finally:
        srv2.stop()


def test_clean_stop_writes_a_snapshot_and_restart_resumes_from_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = Server(data, "--no-agents", "--feed", "none").start()
    w = Account.create()
    srv.fund(w.address)
    oid = Exchange(w, srv.url).order("BTC", True, 0.001, 60000, {"limit": {"tif": "Gtc"}})[
        "response"]["data"]["statuses"][0]["resting"]["oid"]
    before = srv.info({"type": "perpboxState"})
    srv.stop()  # SIGTERM: clean shutdown takes a snapshot
    out = subprocess.run([sys.executable, "-m", "perpbox.cli", "replay", str(data), "--upto", str(before["seq"])],
                         capture_output=True, text=True, check=True).stdout
    assert f"state_hash={before['stateHash']}" in out
    srv2 = Server(data, "--no-agents", "--feed", "none").start()
    try:
        assert [o["oid"] for o in Info(srv2.url, skip_ws=True).open_orders(w.address)] == [oid]
    finally:
        srv2.stop()
