"""Property (security issue): no action of user A ever lowers the equity of user B, except through
B's own orders, fills, funding, liquidation or ADL.

The world is the default ``perpbox serve`` exchange built in-process: the markets of
``perpbox/data/default.toml`` listed with ``store.sequencer.bootstrap_commands`` and the backstop vaults
funded with ``backstop_deposits``; oracles fed with ``FeedPrices`` at the listed prices (three spot
sources, two perp sources, as the server's feed job does) and a ``Tick``.  Signed bodies go through
``ExchangeAPI.handle`` exactly as ``POST /exchange`` does (network "both", agents on); its
``submit`` mirrors ``Venue._process``: server time stamped on every command, the nonce window
checked and used per signer (``store.nonces.NonceWindows``), an empty plan logged as a ``Noop``, one
``Exchange.execute`` per command and its typed response collected.

Actors (deterministic keys):

* C, a market maker with $1B resting deep ladders on BTC, ETH and SOL ($18M a side within 2% of
  the mark), so A's orders fill against C and never reach B's quotes;
* B, the bystander, set up only through its own signed actions before A starts: $50k, a
  sub-account (created by B, funded by a ``subAccountTransfer``), spot wallets for both
  (``usdClassTransfer``), an unnamed API wallet, a builder approval of its own, leverage settings,
  a ``usdSend`` to C and a ``withdraw3`` (so replays of them would cost B money), and resting orders
  far from the market (±50%, with cloids; placed by B, by B's API wallet, and for the sub-account
  through ``vaultAddress``), plus an untriggered trigger order.  B holds no position, so its
  equity does not move with the marks and any change is unambiguous;
* A, the attacker: $20k, an approved API wallet and a funded sub-account of its own, a second
  agent key it may approve, and a stranger's key.

Each example is a hypothesis-generated sequence of up to ``MAX_ACTIONS`` attack steps:
orders naming B / B's sub-account / B's API wallet / B's next sub-account address as builder with
``f`` negative, 0, within A's approval, at it, above it, above 0.1%, huge, past u64 or of the wrong
type, on marketable prices (so a legitimate builder fee is really paid), B's own quote prices,
the band edges, bad ticks; ``approveBuilderFee`` naming B and others with valid and malformed
rates; cancels, cancels by cloid, modifies and batch modifies of B's oids and cloids;
``approveAgent`` of B's API wallet, of B, of B's sub-account, of the address B's next sub-account
will get, of A's second key, the zero address, with expiries; ``vaultAddress`` = B or B's
sub-account on every L1 action; ``subAccountTransfer`` and ``usdClassTransfer`` naming B's
sub-account; ``usdSend`` / ``withdraw3`` with odd amounts (zero, negative, dust, exponents,
spaces, more decimals than USDC has, more than A holds); ``createSubAccount``;
``updateLeverage`` / ``updateIsolatedMargin``; ``scheduleCancel`` (and ticks that fire it);
actions signed by A's API wallet, by an unapproved agent key, by a stranger, for mainnet or
testnet, with stale, reused or future nonces and expired ``expiresAfter``; replays of B's own
signed bodies, exact or tampered (another vault, destination, amount, nonce, chain); and ticks
(1 s .. 1 h: funding, triggers, liquidation sweeps of A).

After every step:

1. B's equity (account value of B and B's sub-account plus both spot wallets, from
   ``ex.margin.account_value``) never decreases; more precisely every one of B's four wallets
   changes by exactly what the step credited to it (``Transferred`` into it from outside B, and
   builder fees paid to it in ``Fill``s) and nothing else;
2. no event of the step debits or acts on B: no transfer out of B's wallets, no order placed,
   rejected, closed, resized, armed or triggered for B, no fill with B as taker or maker, no
   leverage, isolated-margin, liquidation, position-transfer or funding event for B, no agent,
   builder-fee or scheduled-cancel setting of B's, and none of B's addresses (B, its sub-account,
   its API wallet) becomes anyone's API wallet;
3. B's orders (every field), positions and leverage settings, sub-accounts, cloids, API
   wallets, builder approvals and dead man's switch are exactly as B left them;
4. money is conserved: ``ledger.total_cash() == deposits − withdrawals``.

Expected behaviour comes from the rule (B never loses and is never acted on), not from the
code's answers: A's actions may succeed or fail in any way.  Volume: ``ci`` runs ``EXAMPLES``
examples (``HYPOTHESIS_PROFILE=dev`` a tenth); derandomized, no example database.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgspec

try:
    from profiles import COMMON, PROFILE
except ModuleNotFoundError:  # e.g. pytest --import-mode=importlib: the directory is not on sys.path
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profiles import COMMON, PROFILE
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from perpbox.api import signing
from perpbox.api.actions import ExchangeAPI
from perpbox.api.info import BadRequest
from perpbox.api.wire import fmt_px, fmt_sz
from perpbox.config import load_config
from perpbox.core.numbers import USD, round_price_sig
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.engine import Exchange
from perpbox.exchange.liquidation import MAIN_BACKSTOP
from perpbox.exchange.results import OK
from perpbox.ledger.ledger import FEE_ACCOUNT, spot_wallet
from perpbox.store.nonces import NonceWindows
from perpbox.store.sequencer import backstop_deposits, bootstrap_commands

# ==================================================================================================
# volume
# ==================================================================================================
MAX_ACTIONS = 15
_PROFILES = {"ci": 100, "dev": 10}
for _name, _n in _PROFILES.items():
    settings.register_profile(f"perpbox-bystander-{_name}", max_examples=_n, **COMMON)
EXAMPLES = _PROFILES[PROFILE]
SETTINGS = settings(settings.get_profile(f"perpbox-bystander-{PROFILE}"), max_examples=EXAMPLES)


# ==================================================================================================
# actors, markets
# ==================================================================================================
def _key(label: str) -> str:
    return "0x" + keccak(text=f"perpbox bystander property test: {label}").hex()


A_KEY, A_AGENT_KEY, A_AGENT2_KEY = _key("A"), _key("A's API wallet"), _key("A's second API wallet")
B_KEY, B_AGENT_KEY, C_KEY, STRANGER_KEY = _key("B"), _key("B's API wallet"), _key("C"), _key("stranger")


def _addr(key: str) -> str:
    return str(Account.from_key(key).address).lower()


A, A_AGENT, A_AGENT2 = _addr(A_KEY), _addr(A_AGENT_KEY), _addr(A_AGENT2_KEY)
B, B_AGENT, C_MM, STRANGER = _addr(B_KEY), _addr(B_AGENT_KEY), _addr(C_KEY), _addr(STRANGER_KEY)
ZERO = "0x" + "0" * 40
KEYS = {"A": A_KEY, "A_AGENT": A_AGENT_KEY, "A_AGENT2": A_AGENT2_KEY, "STRANGER": STRANGER_KEY}
TS0 = 1_700_000_000_000
BTC, ETH, SOL = 0, 1, 2
TRADED = (BTC, ETH, SOL)
UNKNOWN_ASSET = 9_999
C_LEVELS_BPS = (2, 5, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200)  # C's ladder, each level $1.5M a side
C_LEVEL_USD = 1_500_000
B_FAR = 5_000  # bps: B's quotes sit at mark × (1 ± 50%)
DUMMY_SIG = {"r": "0x" + "11" * 32, "s": "0x" + "22" * 32, "v": 27}


def sub_address(master: str, n: int) -> str:
    """The n-th sub-account address of ``master`` (what ``createSubAccount`` derives)."""
    return "0x" + keccak(text=f"{master}:sub:{n}").hex()[-40:]


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (``handle`` only awaits our synchronous ``submit``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("ExchangeAPI.handle suspended: the in-process submit never does")


# ==================================================================================================
# the in-process venue
# ==================================================================================================
class EngineCrash(Exception):
    """An exception from inside ``Exchange.apply``: never a refusal (the venue logs before applying)."""


@dataclass
class World:
    ex: Exchange
    nonces: NonceWindows
    clock: int
    step_events: list[V.Event] = field(default_factory=list)
    all_events: list[V.Event] = field(default_factory=list)
    api: ExchangeAPI = field(init=False)

    def __post_init__(self) -> None:
        self.api = ExchangeAPI(self.ex, self.submit, self.now, network="both")

    def now(self) -> int:
        return self.clock

    async def submit(self, commands: list[C.Command], signer: str | None,
                     nonce: int | None) -> tuple[list[Any], str | None]:
        """``Venue._process`` for one submission."""
        ts = self.now()
        if signer is not None and nonce is not None:
            bad = self.nonces.check(signer, nonce, ts)
            if bad is not None:
                return [], bad
            self.nonces.use(signer, nonce)
        cmds = [msgspec.structs.replace(c, ts=ts) for c in commands]
        padded = False
        if not cmds and signer is not None:
            cmds, padded = [C.Noop(ts=ts, user=signer)], True
        responses = []
        for cmd in cmds:
            try:
                outcome = self.ex.execute(cmd)
            except Exception as e:  # pragma: no cover - a failure of the engine, reported as such
                raise EngineCrash(f"{type(e).__name__}: {e} applying {cmd!r}") from e
            self.step_events.extend(outcome.events)
            self.all_events.extend(outcome.events)
            responses.append(outcome.response)
        return ([] if padded else responses), None

    def command(self, cmd: C.Command) -> Any:
        """A command outside /exchange (faucet deposits, oracle feeds, ticks), stamped like the rest."""
        outcome = self.ex.execute(msgspec.structs.replace(cmd, ts=self.now()))
        self.step_events.extend(outcome.events)
        self.all_events.extend(outcome.events)
        return outcome.response

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /exchange: the envelope, or ``{"status": "422", ...}`` for a malformed body."""
        try:
            return drive(self.api.handle(body))
        except BadRequest as e:
            return {"status": "422", "response": str(e)}
        except EngineCrash:
            raise
        except Exception as e:  # the server answers any other failure of the handler 422 too
            return {"status": "422", "response": f"{type(e).__name__}: {e}"}


def l1_body(key: str, action: dict[str, Any], nonce: int, vault: str | None = None,
            expires: int | None = None, mainnet: bool = False) -> dict[str, Any]:
    try:
        sig = signing.sign_l1_action(key, action, vault, nonce, expires, mainnet)
    except (signing.SignatureError, OverflowError, ValueError, TypeError):
        sig = dict(DUMMY_SIG)  # unsignable (e.g. an integer past u64): sent anyway, as a client could
    return {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": vault, "expiresAfter": expires}


NONCE_FIELD = {"usdSend": "time", "withdraw3": "time"}


def user_body(key: str, action: dict[str, Any], nonce: int, mainnet: bool = False,
              vault: str | None = None) -> dict[str, Any]:
    action = dict(action)
    action[NONCE_FIELD.get(action["type"], "nonce")] = nonce
    try:
        sig = signing.sign_user_signed_action(key, action, mainnet)
    except (signing.SignatureError, OverflowError, ValueError, TypeError):
        action.setdefault("signatureChainId", signing.USER_SIGNED_CHAIN_ID)
        action.setdefault("hyperliquidChain", "Mainnet" if mainnet else "Testnet")
        sig = dict(DUMMY_SIG)
    return {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": vault}


def snap_px(ex: Exchange, asset: int, px: int) -> int:
    spec = ex.board.markets[asset]
    px = round_price_sig(max(px, 1), spec.px_decimals, spec.max_sig_figs)
    assert spec.valid_price(px), (spec.name, px)
    return px


def wire_order(ex: Exchange, asset: int, is_buy: bool, px: int, usd_notional: int, tif: str = "Gtc",
               cloid: str | None = None, reduce_only: bool = False) -> dict[str, Any]:
    spec = ex.board.markets[asset]
    sz = max(1, usd_notional * USD // px)
    w: dict[str, Any] = {"a": asset, "b": is_buy, "p": fmt_px(spec, px), "s": fmt_sz(spec, sz), "r": reduce_only,
                         "t": {"limit": {"tif": tif}}}
    if cloid is not None:
        w["c"] = cloid
    return w


def cloid_of(label: str) -> str:
    return "0x" + keccak(text=label).hex()[:32]


# ==================================================================================================
# the base world: markets, C's liquidity, B's setup (its own signed actions), A's own setup
# ==================================================================================================
@dataclass(frozen=True)
class Base:
    events: tuple[V.Event, ...]  # the base world's events: ``Exchange.replay`` rebuilds it
    state_hash: str
    nonces: NonceWindows
    clock: int
    b_sub: str
    a_sub: str
    b_orders: tuple[tuple[str, int, int, str | None], ...]  # (owner, asset, oid, cloid)
    b_bodies: tuple[dict[str, Any], ...]  # every body B and B's API wallet signed, for replays


@cache
def base() -> Base:
    cfg = load_config()
    w = World(Exchange(), NonceWindows(), TS0)

    def tick_clock(ms: int = 1) -> int:
        w.clock += ms
        return w.clock

    for cmd in bootstrap_commands(cfg, {d.name: "0x" + "d0" * 20 for d in cfg.dexes}) + backstop_deposits(cfg):
        tick_clock()
        assert w.command(cmd) == OK, cmd
    main = [m.spec.asset for m in cfg.markets]
    prices = {m.spec.asset: m.price for m in cfg.markets}
    for perp in (False, True):
        for source in (("binance", "okx") if perp else ("binance", "okx", "bybit")):
            tick_clock()
            w.command(C.FeedPrices(ts=0, source=source, pxs={a: prices[a] for a in main}, perp=perp))
    tick_clock()
    w.command(C.Tick(ts=0))
    for user, usd in ((C_MM, 1_000_000_000), (B, 50_000), (A, 20_000)):
        tick_clock()
        assert w.command(C.Deposit(ts=0, user=user, usd=usd * USD)) == OK

    def ok(body: dict[str, Any]) -> dict[str, Any]:
        resp = w.post(body)
        assert resp["status"] == "ok", (body["action"], resp)
        data = resp["response"].get("data") if isinstance(resp["response"], dict) else None
        statuses = data.get("statuses", []) if isinstance(data, dict) else []
        assert not any(isinstance(s, dict) and "error" in s for s in statuses), (body["action"], resp)
        return resp

    # C: deep two-sided ladders (C is only a liquidity provider; it never acts during the attack)
    for asset in TRADED:
        mark = w.ex.pricing.mark(asset)
        orders = []
        for bps in C_LEVELS_BPS:
            orders.append(wire_order(w.ex, asset, True, snap_px(w.ex, asset, mark * (10_000 - bps) // 10_000),
                                     C_LEVEL_USD, "Alo"))
            orders.append(wire_order(w.ex, asset, False, snap_px(w.ex, asset, mark * (10_000 + bps) // 10_000 + 1),
                                     C_LEVEL_USD, "Alo"))
        ok(l1_body(C_KEY, {"type": "order", "orders": orders, "grouping": "na"}, tick_clock()))

    # B: everything through its own signatures (recorded for the replay attacks)
    b_bodies: list[dict[str, Any]] = []

    def b(body: dict[str, Any]) -> dict[str, Any]:
        b_bodies.append(copy.deepcopy(body))
        return ok(body)

    b_sub = b(l1_body(B_KEY, {"type": "createSubAccount", "name": "savings"}, tick_clock()))["response"]["data"]
    assert b_sub == sub_address(B, 0)
    b(l1_body(B_KEY, {"type": "subAccountTransfer", "subAccountUser": b_sub, "isDeposit": True, "usd": 5_000 * USD},
              tick_clock()))
    b(user_body(B_KEY, {"type": "usdClassTransfer", "amount": "1000", "toPerp": False}, tick_clock()))
    b(user_body(B_KEY, {"type": "usdClassTransfer", "amount": f"300 subaccount:{b_sub}", "toPerp": False},
                tick_clock()))
    b(user_body(B_KEY, {"type": "approveAgent", "agentAddress": B_AGENT, "agentName": ""}, tick_clock()))
    b(user_body(B_KEY, {"type": "approveBuilderFee", "maxFeeRate": "0.01%", "builder": C_MM}, tick_clock()))
    b(l1_body(B_KEY, {"type": "updateLeverage", "asset": BTC, "isCross": False, "leverage": 10}, tick_clock()))
    b(l1_body(B_KEY, {"type": "updateLeverage", "asset": ETH, "isCross": True, "leverage": 3}, tick_clock()))
    b(user_body(B_KEY, {"type": "usdSend", "destination": C_MM, "amount": "5"}, tick_clock()))
    b(user_body(B_KEY, {"type": "withdraw3", "destination": B, "amount": "10"}, tick_clock()))

    def far(asset: int, is_buy: bool) -> int:
        mark = w.ex.pricing.mark(asset)
        return snap_px(w.ex, asset, mark * (10_000 - B_FAR if is_buy else 10_000 + B_FAR) // 10_000)

    b(l1_body(B_KEY, {"type": "order", "grouping": "na", "orders": [
        wire_order(w.ex, BTC, True, far(BTC, True), 2_000, cloid=cloid_of("B0")),
        wire_order(w.ex, ETH, False, far(ETH, False), 2_000, cloid=cloid_of("B1")),
        wire_order(w.ex, SOL, True, far(SOL, True), 1_000, "Alo")]}, tick_clock()))
    b(l1_body(B_AGENT_KEY, {"type": "order", "grouping": "na", "orders": [
        wire_order(w.ex, BTC, False, far(BTC, False), 1_500, cloid=cloid_of("B2"))]}, tick_clock()))
    b(l1_body(B_KEY, {"type": "order", "grouping": "na", "orders": [
        wire_order(w.ex, ETH, True, far(ETH, True), 1_000, cloid=cloid_of("B0")),
        wire_order(w.ex, SOL, False, far(SOL, False), 1_000)]}, tick_clock(), vault=b_sub))
    trig = wire_order(w.ex, BTC, True, far(BTC, True), 1_000, cloid=cloid_of("B3"))
    trig["t"] = {"trigger": {"isMarket": False, "triggerPx": trig["p"], "tpsl": "tp"}}
    b(l1_body(B_KEY, {"type": "order", "grouping": "na", "orders": [trig]}, tick_clock()))

    # A's own, legitimate setup: an API wallet and a funded sub-account
    ok(user_body(A_KEY, {"type": "approveAgent", "agentAddress": A_AGENT, "agentName": ""}, tick_clock()))
    a_sub = ok(l1_body(A_KEY, {"type": "createSubAccount", "name": "a1"}, tick_clock()))["response"]["data"]
    ok(l1_body(A_KEY, {"type": "subAccountTransfer", "subAccountUser": a_sub, "isDeposit": True, "usd": 2_000 * USD},
               tick_clock()))

    b_orders = tuple(sorted((o.user, o.asset, o.oid, o.cloid) for o in w.ex.orders.orders.values()
                            if o.user in (B, b_sub)))
    assert len(b_orders) == 7, b_orders
    return Base(tuple(w.all_events), w.ex.state_hash(), w.nonces, tick_clock(1_000), b_sub, a_sub, b_orders,
                tuple(b_bodies))


# ==================================================================================================
# what is B's, and the checks
# ==================================================================================================
def wallets(bs: Base) -> tuple[str, ...]:
    return (B, bs.b_sub, spot_wallet(B), spot_wallet(bs.b_sub))


def wallet_values(ex: Exchange, bs: Base) -> dict[str, int]:
    out = {}
    for w in wallets(bs):
        acct = ex.ledger.accounts.get(w)
        out[w] = 0 if acct is None else ex.margin.account_value(acct)
    return out


def b_settings(ex: Exchange, bs: Base) -> list[Any]:
    """Everything of B's other than money: orders, positions, structure, access settings."""
    out: list[Any] = []
    for addr in wallets(bs):
        acct = ex.ledger.accounts.get(addr)
        if acct is None:
            out.append((addr, None))
            continue
        orders = []
        for oid in sorted(acct.orders):
            o = ex.orders.orders[oid]
            orders.append((o.oid, o.user, o.asset, o.is_buy, o.px, o.sz, o.orig_sz, o.ts, o.tif, o.reduce_only,
                           o.cloid, o.trigger_px, o.is_market, o.tpsl, o.parent, tuple(o.children), o.status,
                           o.triggered, o.builder, o.builder_fee))
        out.append((addr, acct.master, tuple(acct.subs), acct.n_reduce_only, sorted(acct.cloids.items()), orders,
                    [p.state() for _, p in sorted(acct.positions.items())],
                    ex.access.agents_of(addr),
                    sorted((k, v) for k, v in ex.access.builder_fees.items() if k[0] == addr),
                    ex.access.cancel_schedule.get(addr), ex.access.scheduled_fired.get(addr)))
    out.append(sorted((o.oid, o.status) for o in ex.orders.orders.values() if o.user in wallets(bs)))
    out.append(sorted((agent, e) for agent, e in ex.access.agents.items() if e[0] in wallets(bs)))
    return out


def step_credits(events: list[V.Event], bs: Base) -> tuple[dict[str, int], list[str]]:
    """What the step's events credited to each of B's wallets, and every event that debited or
    acted on B (which must not exist)."""
    mine = set(wallets(bs))
    b_oids = {oid for _, _, oid, _ in bs.b_orders}
    credit = dict.fromkeys(mine, 0)
    offences: list[str] = []
    for ev in events:
        if isinstance(ev, V.Transferred):
            if ev.src in mine:
                offences.append(f"transfer out of B's wallet: {ev!r}")
            elif ev.dst in mine:
                credit[ev.dst] += ev.usd
        elif isinstance(ev, V.Fill):
            if ev.taker in mine or ev.maker in mine:
                offences.append(f"fill of B's: {ev!r}")
            if ev.taker_builder in mine:
                credit[ev.taker_builder] += ev.taker_builder_fee
            if ev.maker_builder in mine:
                credit[ev.maker_builder] += ev.maker_builder_fee
        elif isinstance(ev, V.FundingSettled):
            if any(p[0] in mine for p in ev.payments):
                offences.append(f"funding of B's: {ev!r}")
        elif isinstance(ev, V.PositionTransferred | V.SubAccountCreated):
            if {getattr(ev, "src", ""), getattr(ev, "dst", ""), getattr(ev, "master", ""),
                    getattr(ev, "sub", "")} & mine:
                offences.append(f"acts on B: {ev!r}")
        elif isinstance(ev, V.OrderClosed | V.OrderResized | V.OrderArmed | V.OrderTriggered | V.OrderRested):
            if ev.oid in b_oids:
                offences.append(f"touches B's order: {ev!r}")
        elif getattr(ev, "user", None) in mine:  # placed/rejected orders, leverage, margin, liquidation,
            offences.append(f"acts for B: {ev!r}")  # withdrawals, deposits, agents, builder fees, schedules
        elif isinstance(ev, V.AgentApproved) and ev.agent in (B, bs.b_sub, B_AGENT):
            offences.append(f"B's address made an agent: {ev!r}")
    return credit, offences


def check_step(w: World, bs: Base, before_values: dict[str, int], before_settings: list[Any],
               what: str) -> dict[str, int]:
    ex = w.ex
    after = wallet_values(ex, bs)
    credit, offences = step_credits(w.step_events, bs)
    assert not offences, f"{what}: {offences}"
    assert sum(after.values()) >= sum(before_values.values()), (
        f"{what}: B's equity fell from {sum(before_values.values())} to {sum(after.values())}")
    for wallet in wallets(bs):
        assert after[wallet] - before_values[wallet] == credit[wallet], (
            f"{what}: B's wallet {wallet} went {before_values[wallet]} -> {after[wallet]}, credited {credit[wallet]}")
    assert b_settings(ex, bs) == before_settings, f"{what}: B's orders/positions/settings changed"
    assert ex.ledger.total_cash() == ex.ledger.deposits - ex.ledger.withdrawals, f"{what}: money not conserved"
    return after


# ==================================================================================================
# attack steps: generated as plain data, turned into signed bodies against the live state
# ==================================================================================================
ADDRESS_TARGETS = ("B", "B_SUB", "B_AGENT", "B_NEXT_SUB", "A", "A_SUB", "A_AGENT", "A_AGENT2", "C", "STRANGER",
                   "ZERO", "FEE", "BACKSTOP")
VICTIM_TARGETS = ("B", "B_SUB", "B_AGENT", "B_NEXT_SUB")
FEE_CHOICES = ("neg1", "neg_big", "zero", "one", "half", "at", "over", "cap", "over_cap", "huge", "u64max", "u64",
               "str", "float", "bool")
RATES = ("0.001%", "0.01%", "0.05%", "0.1%", "1%", "1.1%", "0%", "-0.01%", "0.0001%", "abc", "0.01", "%")
AMOUNTS = ("1", "1", "0.000001", "10.5", "10.5", "100", "100", "0.0000001", "0", "-5", "1e3", " 5", "5 ", "+3",
           "19000", "1000000000", "NaN", "", "0x10")
VAULTS = (None, None, None, None, None, "A_SUB", "A_SUB", "B", "B_SUB", "C")
L1_SIGNERS = ("A", "A", "A", "A", "A_AGENT", "A_AGENT", "A_AGENT2", "STRANGER")
USER_SIGNERS = ("A", "A", "A", "A", "A_AGENT", "STRANGER")
NONCES = ("fresh",) * 6 + ("reuse", "old", "future")
PX_CHOICES = ("near", "near", "far", "passive", "b_price", "edge", "out_of_band", "bad_tick", "zero")
NOTIONALS = (15, 1_000, 50_000, 300_000, 10_000_000)
TIFS = ("Gtc", "Gtc", "Ioc", "Ioc", "Ioc", "Alo", "trigger", "Bad")
CLOIDS = (None, None, "B0", "B1", "B2", "fresh", "bad")
AGENT_TARGETS = ("B_AGENT", "B", "B_SUB", "B_NEXT_SUB", "A_AGENT2", "A_AGENT", "ZERO", "C", "FEE", "STRANGER",
                 "A_SUB")
AGENT_NAMES = ("", "", "bot", "x valid_until later", "x valid_until past", "valid_until", "n" * 17)
LEVERAGES = (1, 3, 10, 40, 0, 1_000, -1)

common = st.tuples(st.sampled_from(L1_SIGNERS), st.sampled_from(VAULTS), st.sampled_from(NONCES),
                   st.sampled_from((None,) * 6 + ("expired", "later")), st.booleans())
user_common = st.tuples(st.sampled_from(USER_SIGNERS), st.sampled_from((None,) * 5 + ("B_SUB",)),
                        st.sampled_from(NONCES), st.just(None), st.booleans())
order_params = st.tuples(st.sampled_from((*TRADED, *TRADED, UNKNOWN_ASSET)), st.booleans(),
                         st.sampled_from(PX_CHOICES), st.sampled_from(NOTIONALS), st.sampled_from(TIFS),
                         st.booleans(), st.sampled_from(CLOIDS))
builder_param = st.tuples(st.sampled_from((None,) + VICTIM_TARGETS * 3 + ADDRESS_TARGETS), st.sampled_from(FEE_CHOICES),
                          st.booleans())
b_order_ref = st.tuples(st.integers(0, 6), st.sampled_from(("oid", "oid", "cloid", "other_oid")))

BY_KIND: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "order": st.tuples(st.just("order"), common, st.lists(order_params, min_size=1, max_size=3), builder_param,
                       st.sampled_from(("na", "na", "na", "normalTpsl", "positionTpsl"))),
    "approveBuilderFee": st.tuples(st.just("approveBuilderFee"), user_common,
                                   st.sampled_from(VICTIM_TARGETS + VICTIM_TARGETS + ADDRESS_TARGETS),
                                   st.sampled_from(RATES)),
    "usdSend": st.tuples(st.just("usdSend"), user_common, st.sampled_from(VICTIM_TARGETS + ADDRESS_TARGETS),
                         st.sampled_from(AMOUNTS)),
    "cancel": st.tuples(st.just("cancel"), common, st.lists(b_order_ref, min_size=1, max_size=3)),
    "cancelByCloid": st.tuples(st.just("cancelByCloid"), common, st.lists(b_order_ref, min_size=1, max_size=3)),
    "modify": st.tuples(st.just("modify"), common, b_order_ref, order_params),
    "batchModify": st.tuples(st.just("batchModify"), common,
                             st.lists(st.tuples(b_order_ref, order_params), min_size=1, max_size=3)),
    "approveAgent": st.tuples(st.just("approveAgent"), user_common, st.sampled_from(AGENT_TARGETS),
                              st.sampled_from(AGENT_NAMES), st.booleans()),
    "updateLeverage": st.tuples(st.just("updateLeverage"), common, st.sampled_from((*TRADED, UNKNOWN_ASSET)),
                                st.booleans(), st.sampled_from(LEVERAGES)),
    "updateIsolatedMargin": st.tuples(st.just("updateIsolatedMargin"), common, st.sampled_from(TRADED),
                                      st.sampled_from((1, 10 * USD, -10 * USD, 10**12, -(10**12), 0, 2**63))),
    "withdraw3": st.tuples(st.just("withdraw3"), user_common, st.sampled_from(ADDRESS_TARGETS),
                           st.sampled_from(AMOUNTS)),
    "usdClassTransfer": st.tuples(st.just("usdClassTransfer"), user_common,
                                  st.sampled_from((None, "B_SUB", "B_SUB", "A_SUB", "B", "A", "C")),
                                  st.sampled_from(AMOUNTS), st.booleans()),
    "subAccountTransfer": st.tuples(st.just("subAccountTransfer"), common,
                                    st.sampled_from(("B_SUB", "B_SUB", "A_SUB", "B", "A", "C", "B_NEXT_SUB")),
                                    st.booleans(), st.sampled_from((1, 100 * USD, 1_000 * USD, 10**12, 0, -1, 2**64,
                                                                    "5"))),
    "createSubAccount": st.tuples(st.just("createSubAccount"), common,
                                  st.sampled_from(("x", "savings", "", "n" * 17, "a\n"))),
    "scheduleCancel": st.tuples(st.just("scheduleCancel"), common, st.sampled_from((None, "soon", "later", 0, "past"))),
    "noop": st.tuples(st.just("noop"), common, st.sampled_from(("noop", "setReferrer"))),
    "replay": st.tuples(st.just("replay"), st.integers(0, 100),
                        st.sampled_from(("exact", "exact", "vault_b_sub", "vault_none", "nonce", "dest_a", "amount",
                                         "chain", "as_a"))),
    "tick": st.tuples(st.just("tick"), st.sampled_from((1_000, 6_000, 60_000, 3_600_000))),
}
WEIGHTS = {"order": 6, "approveBuilderFee": 3, "usdSend": 2, "approveAgent": 2, "replay": 2}
STEP = st.sampled_from([k for k in BY_KIND for _ in range(WEIGHTS.get(k, 1))]).flatmap(BY_KIND.__getitem__)
STEPS = st.lists(STEP, min_size=4, max_size=MAX_ACTIONS)


class Attacker:
    """Turns generated steps into bodies against the live world, and posts them."""

    def __init__(self, w: World, bs: Base, log: Callable[[str], None] = print) -> None:
        self.w = w
        self.bs = bs
        self.log = log
        self.last_nonce: dict[str, int] = {}
        self.fresh = 0
        self.credited = 0  # steps that credited B

    # -- names -------------------------------------------------------------------------------------
    def address(self, name: str | None) -> str | None:
        if name is None:
            return None
        ex = self.w.ex
        table = {"B": B, "B_SUB": self.bs.b_sub, "B_AGENT": B_AGENT,
                 "B_NEXT_SUB": sub_address(B, len(ex.ledger.accounts[B].subs)), "A": A, "A_SUB": self.bs.a_sub,
                 "A_AGENT": A_AGENT, "A_AGENT2": A_AGENT2, "C": C_MM, "STRANGER": STRANGER, "ZERO": ZERO,
                 "FEE": FEE_ACCOUNT, "BACKSTOP": MAIN_BACKSTOP}
        return table[name]

    def nonce(self, signer: str, choice: str) -> int:
        now = self.w.clock
        last = self.last_nonce.get(signer)
        if choice == "reuse" and last is not None:
            return last
        if choice == "old":
            return now - 3 * 86_400_000
        if choice == "future":
            return now + 2 * 86_400_000
        n = max(now, (last or 0) + 1)
        self.last_nonce[signer] = n
        return n

    def expires(self, choice: str | None) -> int | None:
        return {None: None, "expired": self.w.clock - 1, "later": self.w.clock + 60_000}[choice]

    def l1(self, common: tuple[Any, ...], action: dict[str, Any]) -> dict[str, Any]:
        signer, vault, nonce, expires, mainnet = common
        return l1_body(KEYS[signer], action, self.nonce(signer, nonce), self.address(vault), self.expires(expires),
                       mainnet)

    def user(self, common: tuple[Any, ...], action: dict[str, Any]) -> dict[str, Any]:
        signer, vault, nonce, _, mainnet = common
        return user_body(KEYS[signer], action, self.nonce(signer, nonce), mainnet, self.address(vault))

    def b_order(self, ref: tuple[int, str]) -> tuple[int, int | str]:
        """(asset, oid or cloid) of one of B's orders (or a near miss of one)."""
        i, form = ref
        _, asset, oid, cloid = self.bs.b_orders[i % len(self.bs.b_orders)]
        if form == "cloid" and cloid is not None:
            return asset, cloid
        if form == "other_oid":
            return (asset + 1) % 3, oid
        return asset, oid

    # -- orders ------------------------------------------------------------------------------------
    def price(self, asset: int, is_buy: bool, choice: str) -> str:
        ex = self.w.ex
        if asset not in ex.board.markets:
            return "100"
        spec = ex.board.markets[asset]
        mark = ex.pricing.mark(asset)
        if choice == "bad_tick":
            return fmt_px(spec, mark) + "000001"
        if choice == "zero":
            return "0"
        bps = {"near": 50, "far": 500, "passive": -100, "b_price": B_FAR, "edge": 7_900, "out_of_band": 9_000}[choice]
        px = mark * (10_000 + bps) // 10_000 if is_buy else mark * (10_000 - bps) // 10_000
        return fmt_px(spec, snap_px(ex, asset, max(px, 1)))

    def wire(self, params: tuple[Any, ...]) -> dict[str, Any]:
        asset, is_buy, px_choice, notional, tif, reduce_only, cloid = params
        ex = self.w.ex
        p = self.price(asset, is_buy, px_choice)
        if asset in ex.board.markets:
            spec = ex.board.markets[asset]
            ref = ex.pricing.mark(asset)
            s = fmt_sz(spec, max(1, notional * USD // ref))
        else:
            s = "1"
        if tif == "trigger":
            t: dict[str, Any] = {"trigger": {"isMarket": reduce_only, "triggerPx": p, "tpsl": "tp" if is_buy else "sl"}}
        else:
            t = {"limit": {"tif": tif}}
        w: dict[str, Any] = {"a": asset, "b": is_buy, "p": p, "s": s, "r": reduce_only, "t": t}
        if cloid is not None:
            if cloid == "fresh":
                self.fresh += 1
                w["c"] = cloid_of(f"A{self.fresh}")
            elif cloid == "bad":
                w["c"] = "0x1234"
            else:
                w["c"] = cloid_of(cloid)
        return w

    def fee(self, choice: str, builder: str, user: str) -> Any:
        approval = self.w.ex.access.max_builder_fee(user, builder)
        return {"neg1": -1, "neg_big": -1_000_000, "zero": 0, "one": 1, "half": max(1, approval // 2),
                "at": max(1, approval), "over": approval + 1, "cap": 100, "over_cap": 101, "huge": 10**9,
                "u64max": 2**64 - 1, "u64": 2**64, "str": "10", "float": 10.0, "bool": True}[choice]

    # -- one step ----------------------------------------------------------------------------------
    def body(self, step: tuple[Any, ...]) -> dict[str, Any] | None:
        kind = step[0]
        if kind == "order":
            _, common, orders, builder, grouping = step
            action: dict[str, Any] = {"type": "order", "orders": [self.wire(o) for o in orders], "grouping": grouping}
            target, fee_choice, checksum = builder
            if target is not None:
                addr = self.address(target)
                assert addr is not None
                user = self.address(common[1]) or A
                action["builder"] = {"b": to_checksum_address(addr) if checksum else addr,
                                     "f": self.fee(fee_choice, addr, user)}
            return self.l1(common, action)
        if kind == "approveBuilderFee":
            _, common, target, rate = step
            return self.user(common, {"type": "approveBuilderFee", "maxFeeRate": rate, "builder": self.address(target)})
        if kind in ("cancel", "cancelByCloid"):
            _, common, refs = step
            cancels = []
            for ref in refs:
                asset, ident = self.b_order(ref)
                if kind == "cancel":
                    cancels.append({"a": asset, "o": ident if isinstance(ident, int) else 1})
                else:
                    cancels.append({"asset": asset, "cloid": ident if isinstance(ident, str) else cloid_of("B0")})
            return self.l1(common, {"type": kind, "cancels": cancels})
        if kind == "modify":
            _, common, ref, params = step
            return self.l1(common, {"type": "modify", "oid": self.b_order(ref)[1], "order": self.wire(params)})
        if kind == "batchModify":
            _, common, mods = step
            return self.l1(common, {"type": "batchModify",
                                    "modifies": [{"oid": self.b_order(r)[1], "order": self.wire(p)} for r, p in mods]})
        if kind == "approveAgent":
            _, common, target, name, checksum = step
            addr = self.address(target)
            assert addr is not None
            if name == "x valid_until later":
                name = f"x valid_until {self.w.clock + 86_400_000}"
            elif name == "x valid_until past":
                name = f"x valid_until {self.w.clock - 1}"
            return self.user(common, {"type": "approveAgent", "agentAddress": to_checksum_address(addr) if checksum
                                      else addr, "agentName": name})
        if kind == "updateLeverage":
            _, common, asset, cross, lev = step
            return self.l1(common, {"type": "updateLeverage", "asset": asset, "isCross": cross, "leverage": lev})
        if kind == "updateIsolatedMargin":
            _, common, asset, ntli = step
            return self.l1(common, {"type": "updateIsolatedMargin", "asset": asset, "isBuy": True, "ntli": ntli})
        if kind in ("usdSend", "withdraw3"):
            _, common, target, amount = step
            return self.user(common, {"type": kind, "destination": self.address(target), "amount": amount})
        if kind == "usdClassTransfer":
            _, common, owner, amount, to_perp = step
            if owner is not None:
                amount = f"{amount} subaccount:{self.address(owner)}"
            return self.user(common, {"type": "usdClassTransfer", "amount": amount, "toPerp": to_perp})
        if kind == "subAccountTransfer":
            _, common, target, deposit, usd = step
            return self.l1(common, {"type": "subAccountTransfer", "subAccountUser": self.address(target),
                                    "isDeposit": deposit, "usd": usd})
        if kind == "createSubAccount":
            _, common, name = step
            return self.l1(common, {"type": "createSubAccount", "name": name})
        if kind == "scheduleCancel":
            _, common, when = step
            action = {"type": "scheduleCancel"}
            if when is not None:
                action["time"] = {"soon": self.w.clock + 5_000, "later": self.w.clock + 3_600_000, 0: 0,
                                  "past": self.w.clock - 1}[when]
            return self.l1(common, action)
        if kind == "noop":
            _, common, which = step
            action = {"type": "noop"} if which == "noop" else {"type": "setReferrer", "code": "B"}
            return self.l1(common, action)
        if kind == "replay":
            _, i, tamper = step
            return self.replay(copy.deepcopy(self.bs.b_bodies[i % len(self.bs.b_bodies)]), tamper)
        raise AssertionError(kind)

    def replay(self, body: dict[str, Any], tamper: str) -> dict[str, Any]:
        """One of B's own signed bodies, re-sent by A as it was or changed (the signature kept)."""
        action = body["action"]
        if tamper == "vault_b_sub":
            body["vaultAddress"] = self.bs.b_sub
        elif tamper == "vault_none":
            body["vaultAddress"] = None
        elif tamper == "nonce":
            body["nonce"] += 1
        elif tamper == "dest_a":
            for k in ("destination", "subAccountUser", "builder", "agentAddress"):
                if k in action:
                    action[k] = A
        elif tamper == "amount":
            for k in ("amount", "usd"):
                if k in action:
                    action[k] = "1000" if isinstance(action[k], str) else action[k] * 2
            for o in action.get("orders", []):
                o["p"] = self.price(o["a"], o["b"], "near")
        elif tamper == "chain" and "hyperliquidChain" in action:
            action["hyperliquidChain"] = "Mainnet" if action["hyperliquidChain"] == "Testnet" else "Testnet"
        elif tamper == "as_a":  # B's action re-signed by A: A acting on its own account, B's sub as vault
            return l1_body(A_KEY, action, self.nonce("A", "fresh"), body.get("vaultAddress")) \
                if not signing.is_user_signed(action) else user_body(A_KEY, action, self.nonce("A", "fresh"))
        return body

    def run(self, steps: list[tuple[Any, ...]]) -> None:
        w, bs = self.w, self.bs
        values = wallet_values(w.ex, bs)
        settings_b = b_settings(w.ex, bs)
        for n, step in enumerate(steps):
            w.step_events = []
            w.clock += 3
            if step[0] == "tick":
                w.clock += step[1]
                w.command(C.Tick(ts=0))
                what = f"step {n}: tick +{step[1]} ms"
            else:
                body = self.body(step)
                assert body is not None
                resp = w.post(body)
                what = f"step {n}: {step[0]} {body!r} -> {resp!r}"
            self.log(what)
            after = check_step(w, bs, values, settings_b, what)
            if after != values:
                self.credited += 1
            values = after
        # the events say everything that happened: replayed, they give the same state
        assert Exchange.replay(bs.events + tuple(w.all_events)).state_hash() == w.ex.state_hash()


def fresh_world() -> tuple[World, Base]:
    bs = base()
    ex = Exchange.replay(bs.events)
    assert ex.state_hash() == bs.state_hash
    return World(ex, copy.deepcopy(bs.nonces), bs.clock), bs


# ==================================================================================================
# the property
# ==================================================================================================
OWN = ("A", None, "fresh", None, False)
OWN_USER = ("A", None, "fresh", None, False)
MARKET_BUY = (BTC, True, "near", 1_000, "Ioc", False, None)
NO_BUILDER = (None, "zero", False)


@SETTINGS
@given(STEPS)
@example([("order", OWN, [MARKET_BUY], ("B", "neg_big", False), "na")])  # the fixed bug: a negative fee
@example([("order", OWN, [MARKET_BUY], ("B", "neg1", True), "na")])
@example([("approveBuilderFee", OWN_USER, "B", "0.05%"), ("order", OWN, [MARKET_BUY], ("B", "neg1", False), "na")])
@example([("approveAgent", OWN_USER, "B_AGENT", "", False), ("order", ("A", "B", "fresh", None, False),
                                                               [MARKET_BUY], NO_BUILDER, "na")])
@example([("approveAgent", OWN_USER, "B", "", False), ("approveAgent", OWN_USER, "B_SUB", "", True)])
@example([("order", ("A_AGENT", "B_SUB", "fresh", None, False), [MARKET_BUY], NO_BUILDER, "na"),
          ("subAccountTransfer", ("A_AGENT", None, "fresh", None, False), "B_SUB", False, 1_000 * USD)])
@example([("replay", i, "exact") for i in range(15)])
@example([("replay", i, t) for i in (1, 2, 3, 8, 9) for t in ("vault_b_sub", "dest_a", "amount", "nonce")])
@example([("cancel", ("A", "B", "fresh", None, False), [(0, "oid"), (1, "oid")]),
          ("cancelByCloid", OWN, [(0, "cloid"), (1, "cloid")]),
          ("batchModify", ("A", "B_SUB", "fresh", None, True), [((4, "oid"), MARKET_BUY), ((4, "cloid"), MARKET_BUY)])])
@example([("scheduleCancel", ("A", "B", "fresh", None, False), "soon"), ("tick", 6_000),
          ("usdClassTransfer", OWN_USER, "B_SUB", "100", True), ("usdClassTransfer", OWN_USER, "B_SUB", "100", False)])
def test_no_action_of_a_lowers_bystander_equity(steps: list[tuple[Any, ...]]) -> None:
    w, bs = fresh_world()
    Attacker(w, bs, note).run(steps)


def test_builder_fees_a_approved_are_credited_to_b_and_nothing_else_moves() -> None:
    """The one legitimate way A's orders pay B: A approves B as a builder, then trades with B's
    code within the approval.  B's equity rises by exactly the fees (the property's exact
    per-wallet accounting), and both an unapproved sub-account fee and an over-approval one are
    refused without moving anything."""
    w, bs = fresh_world()
    before = wallet_values(w.ex, bs)
    steps: list[tuple[Any, ...]] = [
        ("approveBuilderFee", OWN_USER, "B", "0.05%"),
        ("approveBuilderFee", OWN_USER, "B_SUB", "0.01%"),
        ("order", OWN, [MARKET_BUY], ("B", "at", False), "na"),  # f = 50: paid
        ("order", OWN, [(BTC, False, "near", 1_000, "Ioc", False, None)], ("B_SUB", "at", True), "na"),  # f = 10
        ("order", OWN, [MARKET_BUY], ("B", "over", False), "na"),  # f = 51: refused
        ("order", OWN, [MARKET_BUY], ("B", "neg1", False), "na"),  # refused (422)
    ]
    attacker = Attacker(w, bs, lambda _: None)
    attacker.run(steps)
    after = wallet_values(w.ex, bs)
    assert attacker.credited == 2
    fills = [e for e in w.all_events if isinstance(e, V.Fill) and e.taker == A]
    assert fills and all(e.taker_builder in (B, bs.b_sub) for e in fills)
    due = {B: 0, bs.b_sub: 0}
    for e in fills:  # tenths of a bp of the notional, rounded up: 50 for B, 10 for B's sub-account
        due[e.taker_builder] += -(-e.px * e.sz * (50 if e.taker_builder == B else 10) // 100_000)
    assert after[B] - before[B] == due[B] > 0
    assert after[bs.b_sub] - before[bs.b_sub] == due[bs.b_sub] > 0


def test_setup_gives_b_something_to_lose() -> None:
    """The world is as described: B's wallets all hold money, its seven orders rest far from the
    market, and A can trade against C."""
    w, bs = fresh_world()
    values = wallet_values(w.ex, bs)
    assert all(v > 0 for v in values.values()), values
    assert {oid for _, _, oid, _ in bs.b_orders} <= set(w.ex.orders.orders)
    assert w.ex.access.agent_master(B_AGENT, w.clock) == B and w.ex.access.agent_master(A_AGENT, w.clock) == A
    resp = w.post(l1_body(A_KEY, {"type": "order", "orders": [Attacker(w, bs).wire(MARKET_BUY)], "grouping": "na"},
                          w.clock))
    assert "filled" in resp["response"]["data"]["statuses"][0], resp


