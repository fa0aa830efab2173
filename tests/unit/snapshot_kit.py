"""Shared by the snapshot tests, in this process and as a script in another build's process.

``drive`` runs a real ``Venue`` (its sequencer, command log and periodic snapshots) through a seeded
session: the shipped markets, oracle feeds and ticks, the simulated market makers, takers and
levered traders (fills, funding, liquidations), and signed clients (nonces) placing orders with
cloids and TP/SL triggers, cancelling, transferring USDC, changing leverage and approving agents.

``graph_diff`` compares two states object by object: every attribute of every object reachable
from them (read models and nonce windows too, not only what the state hash covers), and that
shared objects are shared the same way.

As a script::

    python snapshot_kit.py write DIR ROUNDS EVERY   # a session; prints {"seq", "snapshot_seq", ...}
    python snapshot_kit.py check DIR                # recover DIR, compare with a full replay
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec

# Derived or scratch attributes a restored exchange does not share with the original: the dispatch
# table and the event sink (bound methods), the last command's output, the liquidation pre-filter
# (rebuilt from the ledger on the next sweep), the fee-tier cache and the matching scratch.
NOT_COMPARED = {"_handlers", "sink", "position_index", "_fee_tiers", "_fee_day", "_oi_stopped"}

USD = 10**6
CLIENTS = ["0x" + f"{0xC1 << 152 | i:040x}" for i in range(1, 7)]


async def drive(data_dir: Path, rounds: int, snapshot_every: int, seed: int = 1) -> Any:
    from perpbox.agents.simulated import Agents, funding_commands
    from perpbox.config import load_config
    from perpbox.exchange import commands as C
    from perpbox.feeds.synthetic import SyntheticFeed
    from perpbox.store.sequencer import Venue, backstop_deposits, bootstrap_commands

    v = Venue(data_dir, fsync=False, snapshot_every=snapshot_every)
    task = asyncio.create_task(v.run())
    await asyncio.sleep(0)
    cfg = load_config(None)
    rng = random.Random(seed)
    await v.submit(bootstrap_commands(cfg, {d.name: "0x" + f"{0xDE << 152 | i:040x}" for i, d in
                                            enumerate(cfg.dexes)}))
    await v.submit(backstop_deposits(cfg))
    await v.submit(funding_commands(v.ex))
    await v.submit([C.Deposit(ts=0, user=u, usd=500_000 * USD) for u in CLIENTS])
    agents = Agents(v.ex, v.submit, seed)
    feed = SyntheticFeed(cfg.all_markets(), seed, v.now())
    main = [m.spec.asset for m in cfg.markets]
    nonce = v.now()
    for r in range(rounds):
        feed.step(v.now())
        await v.submit([C.FeedPrices(ts=0, source=s, pxs={a: feed.quote(a) for a in main}) for s in
                        ("binance", "okx", "bybit")])
        await v.submit([C.Tick(ts=0)])
        await agents.requote()
        await agents.take()
        if r % 3 == 0:
            await agents.lever()
        user = rng.choice(CLIENTS)
        asset = rng.choice(main)
        mark = v.ex.reads.mark(asset)
        nonce = max(nonce + 1, v.now())
        k = rng.random()
        cmd: C.Command
        if k < 0.4 and mark:
            spec = v.ex.reads.market(asset)
            px = max(1, mark * rng.randint(80, 99) // 100)
            px = _round_sig(px, spec.max_sig_figs)
            sz = max(1, 20 * 10**spec.px_decimals * USD // max(px, 1) // 10**6)
            cloid = "0x" + f"{rng.getrandbits(128):032x}" if rng.random() < 0.3 else None
            tpsl = rng.random() < 0.1
            cmd = C.place(0, user, asset, True, px, sz, cloid=cloid,
                          **({"reduce_only": True, "tpsl": "sl", "trigger_px": px, "is_market": True} if tpsl else {}))
        elif k < 0.6:
            mine = v.ex.reads.open_orders(user)
            if not mine:
                continue
            o = rng.choice(mine)
            cmd = C.Cancel(ts=0, user=user, asset=o.asset, oid=o.oid)
        elif k < 0.75:
            cmd = C.Transfer(ts=0, src=user, dst=rng.choice(CLIENTS), usd=rng.randint(1, 100) * USD)
        elif k < 0.9:
            cmd = C.UpdateLeverage(ts=0, user=user, asset=asset, is_cross=rng.random() < 0.8,
                                   leverage=rng.randint(1, 10))
        else:
            cmd = C.ApproveAgent(ts=0, user=user, agent="0x" + f"{rng.getrandbits(160):040x}", name=f"a{r}")
        await v.submit([cmd], signer=user, nonce=nonce)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return v


def _round_sig(px: int, sig: int) -> int:
    digits = len(str(px))
    if digits <= sig:
        return px
    q = 10 ** (digits - sig)
    return px // q * q


def graph_diff(a: Any, b: Any, limit: int = 20) -> list[str]:
    """Where the object graphs from ``a`` and ``b`` differ (empty: the same values, the same types
    and the same sharing), up to ``limit`` differences."""
    out: list[str] = []
    pairs: dict[int, int] = {}  # id in a -> id in b: a shared object must map to one shared object
    back: dict[int, int] = {}
    stack: list[tuple[Any, Any, str]] = [(a, b, "root")]
    while stack and len(out) < limit:
        x, y, path = stack.pop()
        if type(x) is not type(y):
            out.append(f"{path}: {type(x).__name__} != {type(y).__name__}")
            continue
        if isinstance(x, (type(None), bool, int, str, bytes, float, Fraction)) or (
                type(x).__module__ == "builtins" and not isinstance(x, (list, tuple, dict, set, frozenset))):
            if x != y:
                out.append(f"{path}: {x!r} != {y!r}")
            continue
        if not _immutable(x):  # a mutable object shared in one graph is shared the same way in the other
            if pairs.get(id(x), id(y)) != id(y) or back.get(id(y), id(x)) != id(x):
                out.append(f"{path}: shared differently")
                continue
            if id(x) in pairs:
                continue
            pairs[id(x)], back[id(y)] = id(y), id(x)
        if isinstance(x, (list, tuple, deque)):
            if len(x) != len(y) or (isinstance(x, deque) and x.maxlen != y.maxlen):
                out.append(f"{path}: length {len(x)} != {len(y)}")
                continue
            stack.extend((p, q, f"{path}[{i}]") for i, (p, q) in enumerate(zip(x, y, strict=True)))
        elif isinstance(x, dict):
            if list(x) != list(y):  # the same keys in the same (insertion) order: FIFO levels depend on it
                out.append(f"{path}: keys differ")
                continue
            stack.extend((x[k], y[k], f"{path}[{k!r}]") for k in x)
        elif isinstance(x, (set, frozenset)):
            if x != y:
                out.append(f"{path}: {sorted(map(repr, x ^ y))[:5]} differ")
        elif isinstance(x, msgspec.Struct):
            stack.extend((getattr(x, f), getattr(y, f), f"{path}.{f}") for f in x.__struct_fields__)
        elif hasattr(x, "value") and type(x).__module__.startswith("perpbox") and hasattr(type(x), "__members__"):
            if x != y:
                out.append(f"{path}: {x!r} != {y!r}")
        else:
            xa, ya = _attrs(x), _attrs(y)
            if set(xa) != set(ya):
                out.append(f"{path}: attributes {sorted(set(xa) ^ set(ya))} differ")
                continue
            stack.extend((xa[n], ya[n], f"{path}.{n}") for n in xa)
    return out


def _immutable(x: Any) -> bool:
    if isinstance(x, (tuple, frozenset)):
        return True
    if isinstance(x, msgspec.Struct):
        return bool(x.__struct_config__.frozen)
    params = getattr(type(x), "__dataclass_params__", None)
    return params is not None and bool(params.frozen)


def _attrs(obj: Any) -> dict[str, Any]:
    names: list[str] = []
    for k in type(obj).__mro__:
        names.extend(vars(k).get("__mypyc_attrs__") or vars(k).get("__slots__") or ())
    out = {}
    for n in names:
        if n not in NOT_COMPARED and not n.startswith("__"):
            with contextlib.suppress(AttributeError):
                out[n] = getattr(obj, n)
    for n, value in getattr(obj, "__dict__", {}).items():
        if n not in NOT_COMPARED:
            out[n] = value
    return out


def state_of(rec: Any) -> dict[str, Any]:
    return {"ex": rec.ex, "rm": rec.rm, "nonces": rec.nonces, "seq": rec.seq, "ts": rec.ts}


def _main(argv: list[str]) -> None:
    import perpbox.exchange.engine as engine
    from perpbox.store.log import CommandLog
    from perpbox.store.recovery import recover

    build = "pure" if engine.__file__.endswith(".py") else "compiled"
    if argv[0] == "write":
        v = asyncio.run(drive(Path(argv[1]), int(argv[2]), int(argv[3])))
        snap = v.log.latest_snapshot()
        print(json.dumps({"build": build, "seq": v.state.seq, "hash": v.ex.state_hash(),
                          "snapshot_seq": None if snap is None else snap[0]}))
        v.close()
    elif argv[0] == "check":
        log = CommandLog(Path(argv[1]), fsync=False)
        state, report = recover(log)
        full, full_report = recover(log, use_snapshot=False)
        print(json.dumps({"build": build, "status": report.status, "reason": report.reason,
                          "snapshot_seq": report.snapshot_seq, "replayed": report.replayed,
                          "full_replayed": full_report.replayed, "seq": state.seq, "hash": state.ex.state_hash(),
                          "full_hash": full.ex.state_hash(), "diff": graph_diff(state_of(state), state_of(full))}))


if __name__ == "__main__":
    _main(sys.argv[1:])
