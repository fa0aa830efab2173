"""The numbers the order path reads on every order and fill, copied out of a ``MarketSpec``.

``MarketSpec`` and its parts stay plain dataclasses (msgspec decodes them from the command log,
which it cannot do for compiled classes), so in the compiled build reading ``spec.fees.taker`` is a
generic attribute lookup.  ``MarketRules`` is compiled with the engine: one object per market,
made whenever the exchange sets a market's spec (``MarketBoard.set_spec``), never edited after.
"""

from __future__ import annotations

from perpbox.core.numbers import notional_cap, valid_price_units
from perpbox.market.fees import market_rates
from perpbox.market.spec import MarketSpec


class MarketRules:
    __slots__ = (
        "asset",
        "beyond_caps",
        "caps",
        "default_leverage",
        "dex",
        "maker",
        "makers",
        "max_sig_figs",
        "min_notional",
        "only_isolated",
        "price_band_bps",
        "spec",
        "taker",
        "takers",
        "whole",
    )

    def __init__(self, spec: MarketSpec) -> None:
        table = spec.margin_table
        self.spec = spec
        self.asset: int = spec.asset
        self.dex: str = spec.dex  # "" for the first dex: the engine maps (user, dex) to a margin account
        self.whole: int = 10**spec.px_decimals  # price units per dollar
        self.max_sig_figs: int = spec.max_sig_figs
        self.min_notional: int = spec.min_notional
        self.maker: int = spec.fees.maker
        self.taker: int = spec.fees.taker
        # this market's rates at each fee tier (``market.fees``): index 0 is ``taker`` / ``maker``
        takers, makers = market_rates(spec.fees.taker, spec.fees.maker)
        self.takers: tuple[int, ...] = takers
        self.makers: tuple[int, ...] = makers
        self.default_leverage: int = spec.default_leverage
        self.only_isolated: bool = spec.only_isolated
        self.price_band_bps: int = spec.controls.price_band_bps
        self.caps: tuple[int | None, ...] = table.caps
        self.beyond_caps: int = table.tiers[0].lower_bound

    def valid_price(self, px: int) -> bool:
        return valid_price_units(px, self.whole, self.max_sig_figs)

    def max_notional_at_leverage(self, leverage: int) -> int | None:
        """``MarginTable.max_notional_at_leverage``."""
        return notional_cap(self.caps, self.beyond_caps, leverage)


class MarketGate:
    """What the order path asks of a market's runtime state on every order and fill, copied out of
    its ``MarketConfig`` (status, open-interest caps), its ``PriceState`` (halted, oracle, session,
    mark) and its dex's open-interest cap: all msgspec values, each field of which is a generic
    attribute look-up in the compiled engine.

    Derived state, never in events or the state hash: ``MarketControls.refresh_gate`` rebuilds a
    market's gate whenever one of those three is set, and nothing else writes them."""

    __slots__ = ("capped", "mark", "oracle", "restricted", "session_open")

    def __init__(self, restricted: bool, oracle: int, mark: int, session_open: bool, capped: bool) -> None:
        self.restricted = restricted  # status is not "active", or the oracle definition halts the market
        self.oracle = oracle  # 0: none yet
        self.mark = mark  # 0: none yet
        self.session_open = session_open
        self.capped = capped  # an open-interest cap (the market's, or its dex's) applies
