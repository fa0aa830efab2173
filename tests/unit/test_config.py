"""The serve configuration: the shipped default exchange and the TOML keys a user sets."""

from __future__ import annotations

import re

import pytest

from perpbox.config import load_config, parse_config
from perpbox.core.numbers import USD
from perpbox.exchange import commands as C
from perpbox.exchange.liquidation import MAIN_BACKSTOP, backstop_address
from perpbox.store.sequencer import backstop_deposits

BTC = {"name": "BTC", "sz_decimals": 5, "price": "100000", "margin_tiers": [[0, 40]]}


def test_default_exchange_lists_four_main_markets_and_a_hip3_dex_with_funded_backstops() -> None:
    cfg = load_config()
    assert [m.spec.coin for m in cfg.all_markets()] == ["BTC", "ETH", "SOL", "HYPE", "xyz:XYZ100", "xyz:SILVER"]
    assert cfg.all_markets()[0].spec.liquidation.unwind_ntl_per_tick == 250_000 * USD
    xyz_vault = backstop_address(1)  # a deposit lands on the first dex: the vault sends it to its own dex
    assert backstop_deposits(cfg) == [C.Deposit(ts=0, user=MAIN_BACKSTOP, usd=10_000_000 * USD),
                                      C.Deposit(ts=0, user=xyz_vault, usd=1_000_000 * USD),
                                      C.SendAsset(ts=0, user=xyz_vault, src=xyz_vault, dst=xyz_vault, src_dex="",
                                                  dst_dex="xyz", usd=1_000_000 * USD)]


def test_liquidation_policy_keys_in_usd_and_bps() -> None:
    cfg = parse_config({"market": [{**BTC, "liquidation": {"max_usd_per_tick": 2_000_000, "unwind_usd_per_tick": 50_000,
                                                             "unwind_slippage_bps": 30}}]})
    lp = cfg.markets[0].spec.liquidation
    assert (lp.max_ntl_per_tick, lp.unwind_ntl_per_tick, lp.unwind_slippage_bps) == (
        2_000_000 * USD, 50_000 * USD, 30)
    assert parse_config({"market": [BTC]}).markets[0].spec.liquidation.unwind_ntl_per_tick == 0  # holds
    assert backstop_deposits(parse_config({"market": [BTC]})) == []


@pytest.mark.parametrize(("table", "message"), [
    ({"unwind_usd": 1}, "unknown liquidation keys ['unwind_usd']"),
    ({"unwind_slippage_bps": 10_000}, "slippage within [0, 100%)"),
])
def test_bad_liquidation_policy_is_refused(table: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_config({"market": [{**BTC, "liquidation": table}]})
