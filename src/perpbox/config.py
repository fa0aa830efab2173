"""The exchange a ``perpbox serve`` runs: markets and dexes from a TOML file (the default ships in
``perpbox/data/default.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from perpbox.core.numbers import USD, parse_units, price_decimals
from perpbox.market import MarginTable, MarketSpec
from perpbox.market.funding import FundingParams, PremiumFormula
from perpbox.market.liquidation import LiquidationParams, MarketControls
from perpbox.market.oracle import OffHours, OracleDefinition, SessionCalendar

SESSIONS = {"us_equities": SessionCalendar.us_equities, "comex_metals": SessionCalendar.comex_metals}


@dataclass(frozen=True)
class ListedMarket:
    spec: MarketSpec
    price: int  # starting oracle, price units
    vol: float  # synthetic feed: annualised volatility


@dataclass(frozen=True)
class Dex:
    name: str
    full_name: str
    markets: list[ListedMarket]
    backstop_usd: int = 0  # what the dex's backstop liquidator vault starts with, micro-USDC


@dataclass(frozen=True)
class ExchangeConfig:
    markets: list[ListedMarket]
    dexes: list[Dex] = field(default_factory=list)
    backstop_usd: int = 0  # the main dex's backstop liquidator vault (HLP's role), micro-USDC

    def all_markets(self) -> list[ListedMarket]:
        return self.markets + [m for d in self.dexes for m in d.markets]


def _market(row: dict[str, Any], asset: int, dex: str) -> ListedMarket:
    try:
        name, szd = str(row["name"]), int(row["sz_decimals"])
        price = parse_units(str(row["price"]), price_decimals(szd))
        tiers = [(int(lb), int(lev)) for lb, lev in row["margin_tiers"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"market {row.get('name')!r}: {e}") from None
    if price is None or price <= 0:
        raise ValueError(f"market {name}: price {row['price']!r} does not fit szDecimals {szd}")
    funding = FundingParams(impact_notional=int(row.get("impact_notional", 6000)) * USD,
                            premium_formula=PremiumFormula.HIP3 if dex else PremiumFormula.VALIDATOR)
    session = SESSIONS[row["session"]]() if "session" in row else None
    off_hours = OffHours(**row.get("off_hours", {}))
    if dex:
        oracle = OracleDefinition.hip3(session=session, off_hours=off_hours)
    else:
        oracle = OracleDefinition.hyperliquid_validators(session=session, off_hours=off_hours)
    controls = MarketControls(oi_cap_ntl=int(row.get("oi_cap_usd", 0)) * USD)
    liquidation = _liquidation(name, row.get("liquidation", {}))
    spec = MarketSpec(name=name, asset=asset, sz_decimals=szd, dex=dex,
                      margin_table=MarginTable.hyperliquid(tiers, f"tiered {tiers[0][1]}x" if len(tiers) > 1 else ""),
                      oracle=oracle, funding=funding, controls=controls, liquidation=liquidation)
    return ListedMarket(spec, price, float(row.get("vol", 0.6)))


LIQUIDATION_KEYS = {"max_usd_per_tick": "max_ntl_per_tick", "unwind_usd_per_tick": "unwind_ntl_per_tick",
                    "unwind_slippage_bps": "unwind_slippage_bps"}


def _liquidation(market: str, table: dict[str, Any]) -> LiquidationParams:
    """``liquidation = { max_usd_per_tick, unwind_usd_per_tick, unwind_slippage_bps }`` (USD and
    basis points); the rest of the policy is Hyperliquid's."""
    unknown = set(table) - set(LIQUIDATION_KEYS)
    if unknown:
        raise ValueError(f"market {market}: unknown liquidation keys {sorted(unknown)}")
    kw = {field: int(table[key]) * (USD if key.endswith("_usd_per_tick") else 1)
          for key, field in LIQUIDATION_KEYS.items() if key in table}
    return LiquidationParams(**kw)  # type: ignore[arg-type]


def parse_config(data: dict[str, Any]) -> ExchangeConfig:
    markets = [_market(row, i, "") for i, row in enumerate(data.get("market", []))]
    dexes = []
    for n, d in enumerate(data.get("dex", []), start=1):
        name = str(d["name"])
        if not (2 <= len(name) <= 4 and name.isalpha() and name.islower()):
            raise ValueError(f"dex name {name!r}: 2-4 lowercase letters, as on Hyperliquid")
        dms = [_market(row, 100_000 + n * 10_000 + i, name) for i, row in enumerate(d.get("market", []))]
        dexes.append(Dex(name, str(d.get("full_name", name)), dms, int(d.get("backstop_usd", 0)) * USD))
    return ExchangeConfig(markets, dexes, int(data.get("backstop_usd", 0)) * USD)


def load_config(path: Path | None = None) -> ExchangeConfig:
    if path is None:
        text = resources.files("perpbox").joinpath("data/default.toml").read_text()
    else:
        text = path.read_text()
    return parse_config(tomllib.loads(text))
