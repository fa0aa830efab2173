"""The listed markets: each one's spec, its order-path rules and its order book, and the dexes
they sit on (index, deployer).

``MarketBoard`` is the only writer of these tables; other components hold them read-only (the
order path reads ``rules`` and ``books`` on every order), so it never rebinds them.  A market's
spec is only ever set through ``set_spec``, which keeps its ``MarketRules`` copy in step.
"""

from __future__ import annotations

from typing import ClassVar

from perpbox.book.book import OrderBook
from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import OK, Error, Handler, Response
from perpbox.exchange.sink import EventSink
from perpbox.ledger.ledger import SPOT, Account, Ledger, Position, dex_account, wallet_owner
from perpbox.market.rules import MarketRules
from perpbox.market.spec import MarketSpec


class MarketBoard:
    """Owns the listing (``AddMarket``) and the per-market tables; see the module docstring."""

    STATE: ClassVar[tuple[str, ...]] = ("markets", "books", "dexes", "dex_deployer")

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.markets: dict[int, MarketSpec] = {}
        self.rules: dict[int, MarketRules] = {}  # derived: the order path's copy of each spec's numbers
        self.books: dict[int, OrderBook] = {}
        self.dexes: dict[str, int] = {"": 0}  # dex name -> index (0: the main dex)
        self.dex_deployer: dict[str, str] = {}

    def handlers(self) -> dict[type, Handler]:
        return {C.AddMarket: self._cmd_add_market}

    def restored(self) -> None:
        """Rebuild what is derived from the stored specs (after a snapshot is loaded)."""
        self.rules.clear()
        for asset, spec in self.markets.items():
            self.rules[asset] = MarketRules(spec)

    # -- reads -------------------------------------------------------------------------------------
    def has(self, asset: int) -> bool:
        return asset in self.markets

    def assets(self) -> list[int]:
        """The listed assets, ascending."""
        return sorted(self.markets)

    def market(self, asset: int) -> MarketSpec:
        """The listed market's spec (``KeyError`` for an unlisted asset)."""
        return self.markets[asset]

    def rules_of(self, asset: int) -> MarketRules:
        return self.rules[asset]

    def book(self, asset: int) -> OrderBook:
        return self.books[asset]

    def spec(self, asset: int) -> MarketSpec | None:
        return self.markets.get(asset)

    def specs(self) -> list[MarketSpec]:
        return [s for _, s in sorted(self.markets.items())]

    def dex_index(self, dex: str) -> int | None:
        return self.dexes.get(dex)

    def dex_count(self) -> int:
        return len(self.dexes)

    def dex_of(self, asset: int) -> str | None:
        """The dex ``asset`` is listed on (``""``: the first dex), or None for an unlisted asset."""
        spec = self.markets.get(asset)
        return None if spec is None else spec.dex

    def spec_table(self) -> dict[int, MarketSpec]:
        """Every listed spec by asset: the table itself, read-only (the liquidation pre-filter
        builds its per-market lines from it)."""
        return self.markets

    def dex_number(self, asset: int) -> int:
        """The index of the dex ``asset`` is listed on."""
        return self.dexes[self.markets[asset].dex]

    def deployer_of(self, dex: str) -> str | None:
        return self.dex_deployer.get(dex)

    def deployer_error(self, user: str, dex: str) -> str | None:
        """Why ``user`` may not act as ``dex``'s deployer, or None."""
        if dex not in self.dex_deployer or not dex:
            return "Unknown dex."  # perpbox wording
        if self.dex_deployer[dex] != user:
            return "Only the deployer of this dex may do that."  # perpbox wording
        return None

    def dex_assets(self, dex: str) -> list[int]:
        return sorted(a for a, s in self.markets.items() if s.dex == dex)

    def margin_key(self, user: str, asset: int) -> str:
        """The ledger account holding ``user``'s margin and position in ``asset``: on the first dex
        the user's own account, on a HIP-3 dex its account there (``ledger.dex_account``; ``user``
        may be the owner's address or that account already).  Orders, fills and cloids stay the
        owner's; cash, positions, liquidation, backstop and ADL are per dex account."""
        dex = self.rules[asset].dex
        return user if not dex else dex_account(dex, wallet_owner(user))

    # -- command -----------------------------------------------------------------------------------
    def _cmd_add_market(self, cmd: C.AddMarket) -> Response:
        spec = cmd.spec
        if spec.asset in self.markets:
            return Error(f"asset {spec.asset} already listed")
        if cmd.mark_px < 0:
            return Error(E.INVALID_PRICE)
        if spec.dex == SPOT or ":" in spec.dex:  # would collide with sendAsset's spot / the dex accounts' keys
            return Error(f"Invalid dex name: {spec.dex}")
        deployer = self.dex_deployer.get(spec.dex, cmd.deployer)
        if spec.dex and not deployer:
            return Error("A HIP-3 dex needs a deployer.")  # perpbox wording
        self.sink.emit(V.MarketListed(ts=cmd.ts, spec=spec, mark_px=cmd.mark_px, deployer=deployer,
                                      full_name=cmd.full_name))
        return OK

    # -- parts of appliers -------------------------------------------------------------------------
    def list_market(self, ev: V.MarketListed) -> None:
        spec = ev.spec
        self.set_spec(spec)
        self.books[spec.asset] = OrderBook(spec.asset)
        if spec.dex not in self.dexes:
            self.dexes[spec.dex] = len(self.dexes)
        if spec.dex and spec.dex not in self.dex_deployer:
            self.dex_deployer[spec.dex] = ev.deployer

    def set_spec(self, spec: MarketSpec) -> None:
        """The only way a market's spec is set, so that its ``MarketRules`` copy stays in step."""
        self.markets[spec.asset] = spec
        self.rules[spec.asset] = MarketRules(spec)

    def set_deployer(self, dex: str, deployer: str) -> None:
        self.dex_deployer[dex] = deployer


def position_slot(ledger: Ledger, rules: MarketRules, acct: Account) -> Position:
    """The account's position in ``rules``'s market (it also holds the leverage setting), created
    with the market's defaults: 20x (or the max) cross, isolated on isolated-only markets."""
    return ledger.position(acct, rules.asset, not rules.only_isolated, rules.default_leverage)
