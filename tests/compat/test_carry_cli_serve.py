"""``perpbox carry`` in live mode, run as a subprocess (``python -m perpbox.cli carry --accounts …``)
against two ``perpbox serve`` (their simulated traders quoting, as test_carry_live_serve.py starts
them): the JSON's mids and funding rates must be what each server's ``/info`` l2Book and
metaAndAssetCtxs say for BTC, read here independently from the raw JSON."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from .conftest import Server, wait_until


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("carry-cli")
    a = Server(root / "a", "--seed", "9").start()
    try:
        b = Server(root / "b", "--seed", "10").start()
    except BaseException:
        a.stop()
        raise
    yield a, b
    b.stop()
    a.stop()


def _raw(server: Server) -> dict[str, Any]:
    """BTC as the venue says it, straight from /info: the top of the book and the context's funding."""
    meta, ctxs = server.info({"type": "metaAndAssetCtxs", "dex": ""})  # type: ignore[misc]
    levels = server.info({"type": "l2Book", "coin": "BTC"})["levels"]  # type: ignore[index]
    i = [u["name"] for u in meta["universe"]].index("BTC")
    return {"bid": levels[0][0]["px"] if levels[0] else None, "ask": levels[1][0]["px"] if levels[1] else None,
            "funding": ctxs[i]["funding"]}


def _accounts(tmp_path: Path, a: Server, b: Server) -> Path:
    for name in ("a", "b"):
        (tmp_path / f"{name}.key").write_text("0x" + Account.create().key.hex().removeprefix("0x"))
    path = tmp_path / "accounts.toml"
    path.write_text(f'[a]\nvenue = "hyperliquid:{a.url}"\nkey_file = "a.key"\n\n'
                    f'[b]\nvenue = "hyperliquid:{b.url}"\nkey_file = "b.key"\n')
    return path


def _quiet_after(server: Server, state: dict[str, Any]) -> None:
    """Return as soon as ``server``'s state moves on from ``state`` (its traders just requoted: the
    longest quiet time is ahead), or after a while if it holds still (then any run will do)."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: _raw(server) != state, timeout=10)


def test_carry_json_reads_what_info_says(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = servers
    wait_until(lambda: all(r["bid"] and r["ask"] for r in (_raw(a), _raw(b))), timeout=60)
    cmd = [sys.executable, "-m", "perpbox.cli", "carry", "--accounts", str(_accounts(tmp_path, a, b)), "--long", "a",
           "--short", "b", "--coin", "BTC", "--days", "2", "--leverage", "3", "--json"]
    legs = {"long": ("a", a), "short": ("b", b)}
    checked: set[str] = set()
    # the simulated traders keep quoting: a leg is compared only in a run its venue's raw state did not
    # move across (each venue on its own: both holding still over one run is rarer)
    for _ in range(40):
        before = {leg: _raw(server) for leg, (_, server) in legs.items()}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        after = {leg: _raw(server) for leg, (_, server) in legs.items()}
        still = {leg for leg in legs if before[leg] == after[leg]}
        if proc.returncode != 0:  # e.g. a book caught one-sided mid-requote: only an error on still books fails
            assert still != set(legs), proc.stdout + proc.stderr
        else:
            out = json.loads(proc.stdout)
            for leg in still - checked:
                _check_leg(out["inputs"][leg], legs[leg][0], before[leg])
                checked.add(leg)
            _check_carry(out)
        if checked == set(legs):
            break
        leg = min(set(legs) - checked)
        _quiet_after(legs[leg][1], after[leg])
    else:
        pytest.fail(f"the venues' state never held still across a run (checked: {sorted(checked)})")


def _check_leg(q: dict[str, Any], account: str, raw: dict[str, Any]) -> None:
    assert (q["account"], q["coin"]) == (account, "BTC")
    bid, ask = Decimal(raw["bid"]), Decimal(raw["ask"])
    assert (Decimal(q["bid"]), Decimal(q["ask"])) == (bid, ask)
    assert Decimal(q["mid"]) == (bid + ask) / 2  # the l2Book mid
    # the ctx's "funding" string: the hourly rate (Hyperliquid settles every hour), the venue's sign
    assert Decimal(q["rate"]) == Decimal(raw["funding"])
    assert q["interval_h"] == "1"
    assert Fraction(q["funding_apr"]) == Fraction(Decimal(raw["funding"])) * 24 * 365


def _check_carry(out: dict[str, Any]) -> None:
    """The carry of the run's own inputs, as given, 3x over 2 days:
    (3/2)·s·365/2 + (3/2)·(−r_long·8,760) + (3/2)·(r_short·8,760), s = short mid / long mid − 1."""
    long, short = out["inputs"]["long"], out["inputs"]["short"]
    half_ulp = Fraction(1, 2 * 10**18)  # non-terminating fractions are written to 18 places
    spread = Fraction(Decimal(short["mid"])) / Fraction(Decimal(long["mid"])) - 1
    assert abs(Fraction(out["inputs"]["spread"]) - spread) <= half_ulp
    rl, rs = Fraction(Decimal(long["rate"])), Fraction(Decimal(short["rate"]))
    total = Fraction(3, 2) * spread * Fraction(365, 2) + Fraction(3, 2) * (-rl * 8760) + Fraction(3, 2) * rs * 8760
    assert out["direction"] == "as given"
    assert abs(Fraction(out["carry"]["total_apr"]) - total) <= half_ulp
    assert not any(isinstance(v, float) for v in (*long.values(), *short.values(), *out["carry"].values()))
