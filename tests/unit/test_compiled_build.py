"""The compiled engine (mypyc, the default install) against the pure-Python reference, command by
command.

The same seeded stream of commands — deposits, orders of every time in force with reduce-only,
cloids and TP/SL triggers, cancels by oid and cloid, modifies, leverage and isolated-margin
changes, withdrawals, and ticks that move the marks (firing triggers and liquidations) — is
applied to the installed build in this process and to a copy of the pure sources in a
subprocess.  Each command's events and response must be identical, and so must the final state
hash.  Skipped when the installed engine is the pure one (nothing to compare).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import perpbox
import perpbox.exchange.engine as engine_module

DRIVER = r'''
import hashlib, random, sys
import msgspec
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.market import MarginTable, MarketSpec

USD = 10**6


def commands(seed, n):
    rng = random.Random(seed)
    users = ["0x" + f"{i:040x}" for i in range(1, 13)]
    mids = {0: 1_000_000, 1: 300_000}  # BTC ($0.1 units), ETH ($0.01 units)
    ticks = {0: 10, 1: 10}
    ts = 1_700_000_000_000
    yield C.AddMarket(ts=ts, spec=MarketSpec(name="BTC", asset=0, sz_decimals=5,
                      margin_table=MarginTable.hyperliquid([(0, 40), (150_000, 20)])), mark_px=mids[0])
    yield C.AddMarket(ts=ts, spec=MarketSpec(name="ETH", asset=1, sz_decimals=4,
                      margin_table=MarginTable.hyperliquid([(0, 25)])), mark_px=mids[1])
    for u in users:
        yield C.Deposit(ts=ts, user=u, usd=rng.choice([2_000, 20_000, 200_000]) * USD)
    cloids = []
    for _ in range(n):
        ts += rng.randint(1, 2_000)
        u = rng.choice(users)
        a = rng.randint(0, 1)
        r = rng.random()
        px = mids[a] + rng.randint(-40, 40) * ticks[a]
        sz = rng.randint(1, 400) * (10 if a == 0 else 30)
        if r < 0.45:
            tif = rng.choice(["Gtc", "Gtc", "Ioc", "Alo", "FrontendMarket"])
            cloid = None
            if rng.random() < 0.2:
                cloid = "0x" + f"{rng.getrandbits(128):032x}"
                cloids.append((u, a, cloid))
            yield C.place(ts, u, a, rng.random() < 0.5, px, sz, tif=tif, reduce_only=rng.random() < 0.15, cloid=cloid)
        elif r < 0.52:
            is_buy = rng.random() < 0.5
            trig = px + (-1 if is_buy else 1) * rng.randint(1, 60) * ticks[a]
            tpsl = rng.choice(["tp", "sl"])
            yield C.place(ts, u, a, is_buy, trig, sz, reduce_only=True, tpsl=tpsl, trigger_px=trig,
                          is_market=rng.random() < 0.5)
        elif r < 0.72:
            yield C.Cancel(ts=ts, user=u, asset=a, oid=rng.randint(1, 40 + n))
        elif r < 0.75 and cloids:
            cu, ca, cl = rng.choice(cloids)
            yield C.CancelByCloid(ts=ts, user=cu, asset=ca, cloid=cl)
        elif r < 0.80:
            yield C.Modify(ts=ts, user=u, oid=rng.randint(1, 40 + n),
                           order=C.OrderRequest(asset=a, is_buy=rng.random() < 0.5, px=px, sz=sz))
        elif r < 0.83:
            yield C.UpdateLeverage(ts=ts, user=u, asset=a, is_cross=rng.random() < 0.7, leverage=rng.randint(1, 30))
        elif r < 0.85:
            yield C.UpdateIsolatedMargin(ts=ts, user=u, asset=a, usd=rng.randint(-500, 500) * USD)
        elif r < 0.86:
            yield C.Withdraw(ts=ts, user=u, usd=rng.randint(1, 5_000) * USD)
        elif r < 0.88:
            yield C.CancelAll(ts=ts, user=u)
        else:
            for k in mids:  # a random walk, with the odd crash
                step = rng.choice([-3, -2, -1, 0, 1, 2, 3]) * ticks[k] * 5
                if rng.random() < 0.03:
                    step = -(mids[k] // 8 // ticks[k]) * ticks[k]
                mids[k] = max(ticks[k] * 100, mids[k] + step)
            yield C.Tick(ts=ts, marks=dict(mids))


seed, n = int(sys.argv[1]), int(sys.argv[2])
ex = Exchange()
for cmd in commands(seed, n):
    outcome = ex.execute(cmd)
    body = msgspec.json.encode([outcome.events, outcome.response], enc_hook=str)
    print(hashlib.sha256(body).hexdigest()[:16])
print(ex.state_hash())
'''

N_COMMANDS = 3_000
SEEDS = (1, 2, 3)


def _compiled() -> bool:
    return not engine_module.__file__.endswith(".py")


def _run(tmp_path: Path, src_root: Path | None, seed: int) -> list[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = None if src_root is None else {**os.environ, "PYTHONPATH": str(src_root)}
    out = subprocess.run([sys.executable, str(script), str(seed), str(N_COMMANDS)], capture_output=True, text=True,
                         env=env, check=True, cwd=tmp_path)
    return out.stdout.split()


@pytest.mark.skipif(not _compiled(), reason="the installed engine is the pure-Python one")
@pytest.mark.parametrize("seed", SEEDS)
def test_compiled_engine_equals_pure_reference_command_by_command(tmp_path: Path, seed: int) -> None:
    pure = tmp_path / "pure"
    shutil.copytree(Path(perpbox.__file__).parent, pure / "perpbox",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    got = _run(tmp_path, None, seed)
    want = _run(tmp_path, pure, seed)
    assert len(got) == len(want) > N_COMMANDS
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    assert first is None, f"seed {seed}: first difference at command {first}"


def test_driver_exercises_the_engine(tmp_path: Path) -> None:
    """Whatever the build: the stream is rich enough to mean something (fills, triggers, errors)."""
    script = tmp_path / "count.py"
    script.write_text(DRIVER.replace("print(hashlib.sha256(body).hexdigest()[:16])", "print(body.decode())")
                      .replace("print(ex.state_hash())", ""))
    out = subprocess.run([sys.executable, str(script), "1", str(N_COMMANDS)], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    kinds: dict[str, int] = {}
    for events, _ in lines:
        for ev in events:
            kinds[ev["type"]] = kinds.get(ev["type"], 0) + 1
    assert kinds.get("Fill", 0) > 300
    assert kinds.get("OrderTriggered", 0) > 5
    assert kinds.get("OrderRejected", 0) > 50
    assert kinds.get("Liquidated", 0) + kinds.get("PositionTransferred", 0) > 0


def test_order_fields_type_matches_order_request() -> None:
    """The compiled engine unpacks an ``OrderRequest`` as ``OrderFields``; a field added, moved or
    retyped in one and not the other would mis-assign every order."""
    import typing

    import msgspec

    from perpbox.exchange.commands import OrderFields, OrderRequest

    declared = [f.type for f in msgspec.structs.fields(OrderRequest)]
    assert declared == list(typing.get_args(OrderFields))
    req = OrderRequest(asset=3, is_buy=True, px=123, sz=4, cloid="0x" + "ab" * 16, builder_fee=7)
    assert msgspec.structs.astuple(req) == (3, True, 123, 4, "Gtc", False, "0x" + "ab" * 16, 0, False, "", "", 7)
