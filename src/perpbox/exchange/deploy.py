"""HIP-3 dex deployment in dev mode: ``registerAsset2``/``registerAsset`` and margin tables.

On Hyperliquid a deployer stakes 500k HYPE and wins a Dutch auction for assets beyond the first
three; a local exchange skips both (``perpbox serve``'s dev mode): any account with collateral may
create a dex with its first ``RegisterAsset`` and becomes that dex's only deployer.

Margin tables follow Hyperliquid's ids: ids 1..50 are the flat tables (one tier at that leverage,
implicit, never inserted); tiered tables get ids from 51 up, in the order they appear (listed with
a market or inserted by a deployer with ``insertMarginTable``).  A deployer may point its assets at
a flat table or at one of its own dex's tables (``setMarginTableIds``).  HIP-3 rules checked:
1..3 tiers, lower bounds strictly increasing from 0, max leverage 1..50 and not increasing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.ports import MarketListing
from perpbox.exchange.results import OK, Error, Handler, Ok
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import SPOT, Ledger
from perpbox.market import MarginTable, MarketSpec
from perpbox.market.funding import FundingParams, PremiumFormula
from perpbox.market.oracle import OracleDefinition
from perpbox.market.spec import MarginMode

FLAT_TABLE_MAX = 50  # ids 1..50: one tier at that leverage
FIRST_TIERED_ID = 51
HIP3_ASSET_BASE = 100_000
HIP3_ASSETS_PER_DEX = 10_000
MAX_HIP3_TIERS = 3
MAX_HIP3_LEVERAGE = 50
MAX_SZ_DECIMALS = 5

INVALID_TABLE_ID = "Invalid margin table id."  # perpbox wording
# perpbox wording
INVALID_TABLE = ("Invalid margin table: 1 to 3 tiers, lower bounds increasing from 0, "
                 "max leverage 1 to 50 and not increasing.")
ASSET_EXISTS = "Asset already exists on this dex."  # perpbox wording
DEX_NEEDS_SCHEMA = "Dex does not exist: the first registerAsset needs a schema."  # perpbox wording
INVALID_DEX_NAME = "Invalid dex name: 2 to 4 lowercase letters."  # perpbox wording
INVALID_COIN = "Invalid coin name."  # perpbox wording
INVALID_SZ_DECIMALS = "Invalid szDecimals."  # perpbox wording


def flat_table(table_id: int) -> MarginTable | None:
    return MarginTable.single(table_id) if 1 <= table_id <= FLAT_TABLE_MAX else None


def hip3_spec(dex: str, coin: str, asset: int, sz_decimals: int, table: MarginTable, margin_mode: str) -> MarketSpec:
    """A deployer-listed market with HIP-3 defaults: deployer oracle (``setOracle``), HIP-3 mark
    and premium formula, Hyperliquid's default fees and $10 minimum."""
    return MarketSpec(name=coin, asset=asset, sz_decimals=sz_decimals, dex=dex, margin_table=table,
                      margin_mode=MarginMode(margin_mode), oracle=OracleDefinition.hip3(),
                      funding=FundingParams(premium_formula=PremiumFormula.HIP3))


def table_error(table: MarginTable) -> str | None:
    tiers = table.tiers
    levs = [t.max_leverage for t in tiers]
    if not 1 <= len(tiers) <= MAX_HIP3_TIERS or not all(1 <= lev <= MAX_HIP3_LEVERAGE for lev in levs):
        return INVALID_TABLE
    if levs != sorted(levs, reverse=True):
        return INVALID_TABLE
    return None


class DexDeployment:
    """Owns the margin tables and which table each market uses (commands and appliers); sees the
    listed markets through ``MarketListing`` and accounts through the ledger."""

    def __init__(self, sink: EventSink, ledger: Ledger, listing: MarketListing) -> None:
        self.sink = sink
        self.ledger = ledger
        self.listing = listing
        self.margin_tables: dict[int, tuple[str, MarginTable]] = {}  # tiered table id -> (dex, table)
        self.table_ids: dict[int, int] = {}  # asset -> margin table id
        self.dex_full_names: dict[str, str] = {}

    STATE: ClassVar[tuple[str, ...]] = ("margin_tables", "table_ids", "dex_full_names")

    def handlers(self) -> dict[type, Handler]:
        return {C.RegisterAsset: self._cmd_register_asset, C.InsertMarginTable: self._cmd_insert_margin_table,
                C.SetMarginTableIds: self._cmd_set_margin_table_ids}

    def appliers(self) -> dict[type, Applier]:
        return {V.MarginTableInserted: self._on_margin_table_inserted, V.MarginTableSet: self._on_margin_table_set}

    # -- queries ------------------------------------------------------------------------------------
    def margin_table(self, table_id: int, dex: str | None = None) -> MarginTable | None:
        """Table ``table_id`` (flat or tiered); with ``dex``, only a flat table or one of that dex's."""
        flat = flat_table(table_id)
        if flat is not None:
            return flat
        entry = self.margin_tables.get(table_id)
        if entry is None or (dex is not None and entry[0] != dex):
            return None
        return entry[1]

    def table_id(self, asset: int) -> int:
        """The id of the margin table ``asset`` uses (Hyperliquid's ``marginTableId``)."""
        return self.table_ids[asset]

    def full_name(self, dex: str) -> str:
        return self.dex_full_names.get(dex, dex)

    def dex_tables(self, dex: str) -> list[int]:
        """Ids of the tiered tables that belong to ``dex`` (inserted there or listed with its markets)."""
        return sorted(i for i, (d, _) in self.margin_tables.items() if d == dex)

    def _table_id_for(self, dex: str, table: MarginTable) -> int:
        """The id a listed market's table gets: flat id, an equal table of the dex, or a new id."""
        tiers = table.tiers
        flat = flat_table(tiers[0].max_leverage) if len(tiers) == 1 else None
        if flat is not None and flat.tiers == tiers:
            return tiers[0].max_leverage
        for i, (d, t) in self.margin_tables.items():
            if d == dex and t.tiers == tiers:
                return i
        return self._next_table_id()

    def _next_table_id(self) -> int:
        return max(self.margin_tables, default=FIRST_TIERED_ID - 1) + 1

    # -- commands -----------------------------------------------------------------------------------
    def _cmd_register_asset(self, cmd: C.RegisterAsset) -> Ok | Error:
        acct = self.ledger.accounts.get(cmd.user)
        if acct is None or acct.raw_usd <= 0:
            return Error(E.MUST_DEPOSIT.format(user=cmd.user))
        dex = cmd.dex
        if not (2 <= len(dex) <= 4 and dex.isascii() and dex.isalpha() and dex.islower()) or dex == SPOT:
            return Error(INVALID_DEX_NAME)  # "spot" names the spot wallet in sendAsset
        deployer = self.listing.deployer_of(dex)
        if deployer is not None and deployer != cmd.user:
            return Error("Only the deployer of this dex may do that.")  # perpbox wording
        if deployer is None and not cmd.full_name:
            return Error(DEX_NEEDS_SCHEMA)
        if not (cmd.coin and len(cmd.coin) <= 12 and cmd.coin.isascii() and cmd.coin.isalnum()):
            return Error(INVALID_COIN)
        specs = self.listing.specs()
        if any(s.dex == dex and s.name == cmd.coin for s in specs):
            return Error(ASSET_EXISTS)
        if not 0 <= cmd.sz_decimals <= MAX_SZ_DECIMALS:
            return Error(INVALID_SZ_DECIMALS)
        if cmd.margin_mode not in {m.value for m in MarginMode}:
            return Error("Invalid margin mode.")  # perpbox wording
        table = self.margin_table(cmd.margin_table_id, dex)
        if table is None:
            return Error(INVALID_TABLE_ID)
        if cmd.oracle_px <= 0:
            return Error("Invalid oracle price.")  # perpbox wording
        known = self.listing.dex_index(dex)
        index = self.listing.dex_count() if known is None else known
        n = sum(1 for s in specs if s.dex == dex)
        if n >= HIP3_ASSETS_PER_DEX:
            return Error("Too many assets on this dex.")  # perpbox wording
        spec = hip3_spec(dex, cmd.coin, HIP3_ASSET_BASE + index * HIP3_ASSETS_PER_DEX + n, cmd.sz_decimals, table,
                         cmd.margin_mode)
        self.sink.emit(V.MarketListed(ts=cmd.ts, spec=spec, mark_px=cmd.oracle_px, deployer=cmd.user,
                                  table_id=cmd.margin_table_id, full_name=cmd.full_name))
        return OK

    def _cmd_insert_margin_table(self, cmd: C.InsertMarginTable) -> Ok | Error:
        err = self.listing.deployer_error(cmd.user, cmd.dex) or table_error(cmd.table)
        if err:
            return Error(err)
        self.sink.emit(V.MarginTableInserted(ts=cmd.ts, dex=cmd.dex, table_id=self._next_table_id(), table=cmd.table))
        return OK

    def _cmd_set_margin_table_ids(self, cmd: C.SetMarginTableIds) -> Ok | Error:
        err = self.listing.deployer_error(cmd.user, cmd.dex)
        if err:
            return Error(err)
        for asset, table_id in cmd.ids.items():
            spec = self.listing.spec(asset)
            if spec is None or spec.dex != cmd.dex:
                return Error(f"Unknown asset {asset}.")  # perpbox wording
            if self.margin_table(table_id, cmd.dex) is None:
                return Error(INVALID_TABLE_ID)
        for asset, table_id in sorted(cmd.ids.items()):
            self.sink.emit(V.MarginTableSet(ts=cmd.ts, asset=asset, table_id=table_id))
        return OK

    # -- appliers -----------------------------------------------------------------------------------
    def on_market_listed(self, ev: V.MarketListed) -> None:
        """Record the listed market's table id (called by the MarketListed applier) and the new
        dex's full name."""
        spec = ev.spec
        table_id = ev.table_id or self._table_id_for(spec.dex, spec.margin_table)
        if table_id > FLAT_TABLE_MAX and table_id not in self.margin_tables:
            self.margin_tables[table_id] = (spec.dex, spec.margin_table)
        self.table_ids[spec.asset] = table_id
        if spec.dex and spec.dex not in self.dex_full_names:
            self.dex_full_names[spec.dex] = ev.full_name or spec.dex

    def _on_margin_table_inserted(self, ev: V.MarginTableInserted) -> None:
        self.margin_tables[ev.table_id] = (ev.dex, ev.table)

    def _on_margin_table_set(self, ev: V.MarginTableSet) -> None:
        table = self.margin_table(ev.table_id)
        assert table is not None
        self.listing.set_margin_table(ev.asset, table)
        self.table_ids[ev.asset] = ev.table_id

    def state(self) -> list[Any]:
        """This component's part of the state hash."""
        return [
            [[i, d, [[t.lower_bound, t.max_leverage] for t in table.tiers], table.description]
             for i, (d, table) in sorted(self.margin_tables.items())],
            sorted(self.table_ids.items()),
            sorted(self.dex_full_names.items()),
        ]

