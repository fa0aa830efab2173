"""``POST /exchange``: signed actions → engine commands → the venue's response envelopes.

The flow for one request (reference §3, §4.4):
1. the envelope is checked (``action`` object with a ``type``, integer ``nonce``, ``signature``)
   — a body that does not fit is HTTP 422, like the venue's deserialiser;
2. the signer is recovered (user-signed actions from their EIP-712 typed data, L1 actions from the
   phantom agent);
3. the acting account is the signer, its master if the signer is an API wallet, or the
   ``vaultAddress`` sub-account if the signer's account controls it — steps 1-3 are
   authentication, ``api.auth``;
4. the action becomes engine commands (per-order validation that needs no state — number formats,
   unknown assets — answers per order without reaching the engine, merged back in order): this
   module's translation, one ``_a_<type>`` per action type;
5. the sequencer checks the nonce, logs, applies and returns the engine's typed answers
   (``exchange.results``), which ``api.responses`` puts in the venue's envelope.

Business errors are HTTP 200 ``{"status":"err","response":msg}`` or per-item ``{"error":msg}``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from eth_utils import keccak

from perpbox.api import signing
from perpbox.api.auth import ActionError, Authenticator, parse_envelope
from perpbox.api.info import USDC_TOKEN, BadRequest
from perpbox.api.ratelimit import AddressLimiter
from perpbox.api.responses import batch, default_or_error, err, items, ok_default, wire_status
from perpbox.api.wire import coin_name, parse_px, parse_sz
from perpbox.core import errors as E
from perpbox.core.numbers import RATE_SCALE, USD, parse_units
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.access import MAX_PERP_BUILDER_FEE
from perpbox.exchange.accounts import sub_account_error
from perpbox.exchange.deploy import INVALID_SZ_DECIMALS, INVALID_TABLE
from perpbox.exchange.results import Error, Response, Statuses
from perpbox.ledger.ledger import spot_wallet
from perpbox.market import MarginTable

CLOID = re.compile(r"0x[0-9a-fA-F]{32}")
VALID_UNTIL = re.compile(r"^(.*?)\s*valid_until\s+(\d{1,19})$")
U64 = 2**64  # the venue's integer fields are Rust u64 (i64 for signed amounts): outside, its deserialiser refuses
MAX_BATCH = 1000  # items in one action: our bound (the venue refused 201 cancels: see errors.TOO_MANY_ITEMS)
USDC_SEND_TOKEN = f"USDC:{USDC_TOKEN['tokenId']}"  # sendAsset's token string for USDC (reference §2, spot)
ABSTRACTION_UNSUPPORTED = ("Account abstraction is not supported by perpbox: every perp dex keeps its own "
                           "balance (use sendAsset).")  # perpbox wording

# the sequencer's entry: the commands' typed responses (``exchange.results``), or a nonce error
Submit = Callable[[list[C.Command], str | None, int | None], Awaitable[tuple[list[Response], str | None]]]
NO_STATUSES = Statuses(())  # the answer when no item of a batch reached the engine


@dataclass
class Plan:
    """What an action turns into: commands for the engine, and how to answer."""

    commands: list[C.Command]
    respond: Callable[[list[Response]], dict[str, Any]]
    pre: dict[int, Any] = field(default_factory=dict)  # per-order answers decided before the engine


class ExchangeAPI:
    """Handles /exchange requests: authenticates them (``api.auth``), translates the action and submits
    the commands; ``submit`` is the sequencer's entry."""

    def __init__(self, ex: Exchange, submit: Submit, now: Callable[[], int], network: str = "both",
                 dev: bool = True) -> None:
        self.ex = ex
        self.submit = submit
        self.now = now
        self.auth = Authenticator(ex, now, network)
        self.dev = dev
        self.address_limiter: AddressLimiter | None = None  # set by the server when limits are on

    async def handle(self, body: Any) -> dict[str, Any]:
        action, nonce, signature, vault, expires = parse_envelope(body)
        try:
            signer, user = self.auth.authenticate(action, nonce, signature, vault, expires)
            if self.address_limiter is not None:
                limited = self.address_limiter.check(user, action)
                if limited:
                    raise ActionError(limited)
            plan = self._plan(action, user, signer)
        except ActionError as e:
            return err(str(e))
        responses, nonce_error = await self.submit(plan.commands, signer, nonce)
        if nonce_error is not None:
            return err(nonce_error)
        return plan.respond(responses)

    # -- translation ----------------------------------------------------------------------------------
    def _plan(self, action: dict[str, Any], user: str, signer: str) -> Plan:
        kind = action["type"]
        method = getattr(self, "_a_" + kind, None)
        if method is None:
            raise BadRequest(f"unknown variant `{kind}`")
        if kind not in ("approveAgent", "usdSend", "withdraw3", "noop") and not self.ex.reads.has_account(user):
            raise ActionError(E.MUST_DEPOSIT.format(user=user))
        plan: Plan = method(action, user)
        return plan

    def _spec(self, asset: Any) -> Any:
        if not isinstance(asset, int) or isinstance(asset, bool):
            raise BadRequest("asset: expected an integer")
        return self.ex.reads.market(asset)

    def _order_request(self, wire: Any) -> C.OrderRequest | str:
        """A wire order as an OrderRequest, or the per-order error string."""
        if not isinstance(wire, dict):
            raise BadRequest("order: expected an object")
        a, b, p, s, r, t = (wire.get(k) for k in "abpsrt")
        if not isinstance(b, bool) or not isinstance(r, bool) or not isinstance(t, dict):
            raise BadRequest("order: missing or invalid field")
        spec = self._spec(a)
        if spec is None:
            return E.order_error(E.UNKNOWN_ASSET, a)
        if not isinstance(p, str) or not isinstance(s, str):
            raise BadRequest("order: p and s must be strings")
        px = parse_px(spec, p)
        if px is None:  # more decimals than the price unit holds (or not a number): the venue's bare string
            return E.INVALID_PRICE
        sz = parse_sz(spec, s)
        if sz is None:
            return E.order_error(E.INVALID_SIZE, a)
        cloid = wire.get("c")
        if cloid is not None and (not isinstance(cloid, str) or not CLOID.fullmatch(cloid)):
            raise BadRequest("cloid: expected 0x and 32 hex digits")
        cloid = None if cloid is None else cloid.lower()
        if "limit" in t:
            tif = t["limit"].get("tif") if isinstance(t["limit"], dict) else None
            if tif not in ("Gtc", "Ioc", "Alo"):
                raise BadRequest("tif: unknown variant")
            return C.OrderRequest(asset=a, is_buy=b, px=px, sz=sz, tif=tif, reduce_only=r, cloid=cloid)
        trig = t.get("trigger")
        if not isinstance(trig, dict) or trig.get("tpsl") not in ("tp", "sl") or not isinstance(
                trig.get("isMarket"), bool):
            raise BadRequest("order type: expected limit or trigger")
        tpx = parse_px(spec, trig.get("triggerPx"))
        if tpx is None or tpx <= 0:
            return E.order_error(E.BAD_TRIGGER_PX, a)
        return C.OrderRequest(asset=a, is_buy=b, px=px, sz=sz, reduce_only=r, cloid=cloid, trigger_px=tpx,
                              is_market=trig["isMarket"], tpsl=trig["tpsl"])

    def _statuses(self, res: Response, requests: list[C.OrderRequest | str]) -> list[Any]:
        """A batch's per-order outcomes in wire form, merged with the pre-engine errors in order."""
        engine = iter(items(res))
        out: list[Any] = []
        for req in requests:
            if isinstance(req, str):
                out.append({"error": req})
                continue
            out.append(wire_status(next(engine), self.ex.reads.market(req.asset)))
        return out

    def _a_order(self, action: dict[str, Any], user: str) -> Plan:
        wires = action.get("orders")
        grouping = action.get("grouping", "na")
        if not isinstance(wires, list) or grouping not in ("na", "normalTpsl", "positionTpsl"):
            raise BadRequest("orders/grouping")
        _check_batch(wires)
        builder = action.get("builder")
        code: dict[str, Any] = {}
        if builder is not None:
            if not isinstance(builder, dict) or not _is_u64(builder.get("f")) or not isinstance(builder.get("b"), str):
                raise BadRequest("builder")  # f is an unsigned integer on the venue: a negative one never deserialises
            code = {"builder": _address(builder["b"]), "builder_fee": builder["f"]}
            # the order's own user must have approved at least f for this builder; at most 0.1% on perps
            # (reference §3.3; the venue's string for an over-limit fee is not recorded, so the same one)
            if builder["f"] and (builder["f"] > MAX_PERP_BUILDER_FEE or code["builder"] == user
                                 or self.ex.reads.max_builder_fee(user, code["builder"]) < builder["f"]):
                raise ActionError(E.BUILDER_FEE_NOT_APPROVED)
        if not wires:
            raise ActionError(E.ORDERS_EMPTY)
        requests = [self._order_request(w) for w in wires]
        if code.get("builder_fee"):
            requests = [r if isinstance(r, str) else msgspec.structs.replace(r, **code) for r in requests]
        valid = [r for r in requests if not isinstance(r, str)]
        if grouping != "na" and len(valid) != len(requests):  # a group is placed whole or not at all
            raise ActionError(next(r for r in requests if isinstance(r, str)))

        def respond(results: list[Response]) -> dict[str, Any]:
            res = results[0] if results else NO_STATUSES
            if isinstance(res, Error):
                return err(res.message)
            return batch("order", self._statuses(res, requests))

        cmds: list[C.Command] = [C.PlaceOrders(ts=0, user=user, orders=valid, grouping=grouping)] if valid else []
        return Plan(cmds, respond)

    def _cancel_plan(self, action: dict[str, Any], to_command: Callable[[Any], C.Command | str]) -> Plan:
        """A cancel batch: ``to_command`` turns one wire item into its command, or into the item's
        error (an unknown asset: ``MissingOrder`` without reaching the engine)."""
        cancels = action.get("cancels")
        if not isinstance(cancels, list) or not cancels:
            raise BadRequest("cancels")
        _check_batch(cancels)
        cmds: list[C.Command] = []
        pre: list[str | None] = []
        for c in cancels:
            cmd = to_command(c)
            pre.append(cmd if isinstance(cmd, str) else None)
            if not isinstance(cmd, str):
                cmds.append(cmd)

        def respond(results: list[Response]) -> dict[str, Any]:
            it = iter(results)  # one command per item that reached the engine, one outcome each
            statuses = [{"error": p} if p is not None else wire_status(items(next(it))[0], None) for p in pre]
            return batch("cancel", statuses)

        return Plan(cmds, respond)

    def _a_cancel(self, action: dict[str, Any], user: str) -> Plan:
        def command(c: Any) -> C.Command | str:
            if not isinstance(c, dict) or not _is_u64(c.get("o")):
                raise BadRequest("cancel: expected {a, o}")
            if self._spec(c.get("a")) is None:
                return _missing_order(c["a"])
            return C.Cancel(ts=0, user=user, asset=c["a"], oid=c["o"])

        return self._cancel_plan(action, command)

    def _a_cancelByCloid(self, action: dict[str, Any], user: str) -> Plan:
        def command(c: Any) -> C.Command | str:
            if not isinstance(c, dict) or not isinstance(c.get("cloid"), str) or not CLOID.fullmatch(c["cloid"]):
                raise BadRequest("cancelByCloid: expected {asset, cloid}")
            if self._spec(c.get("asset")) is None:
                return _missing_order(c["asset"])
            return C.CancelByCloid(ts=0, user=user, asset=c["asset"], cloid=c["cloid"].lower())

        return self._cancel_plan(action, command)

    def _modify_of(self, m: Any, user: str) -> tuple[C.Modify | None, C.OrderRequest | str]:
        if not isinstance(m, dict):
            raise BadRequest("modify: expected an object")
        ref = m.get("oid")
        if isinstance(ref, str):
            if not CLOID.fullmatch(ref):
                raise BadRequest("oid: expected an integer or a cloid")
            ref = ref.lower()
        elif not _is_u64(ref):
            raise BadRequest("oid: expected an integer or a cloid")
        req = self._order_request(m.get("order"))
        if isinstance(req, str):
            return None, req
        return C.Modify(ts=0, user=user, oid=ref, order=req), req

    def _a_batchModify(self, action: dict[str, Any], user: str) -> Plan:
        modifies = action.get("modifies")
        if not isinstance(modifies, list) or not modifies:
            raise BadRequest("modifies")
        _check_batch(modifies)
        pairs = [self._modify_of(m, user) for m in modifies]
        valid = [m for m, _ in pairs if m is not None]
        requests = [r for _, r in pairs]

        def respond(results: list[Response]) -> dict[str, Any]:
            return batch("order", self._statuses(results[0] if results else NO_STATUSES, requests))

        cmds: list[C.Command] = [C.BatchModify(ts=0, user=user, modifies=valid)] if valid else []
        return Plan(cmds, respond)

    def _a_modify(self, action: dict[str, Any], user: str) -> Plan:
        mod, req = self._modify_of(action, user)
        if mod is None:
            raise ActionError(str(req))
        return Plan([mod], _default_or_error)

    def _a_scheduleCancel(self, action: dict[str, Any], user: str) -> Plan:
        t = action.get("time")
        if t is not None and not _is_u64(t):
            raise BadRequest("time: expected an integer")
        return Plan([C.ScheduleCancel(ts=0, user=user, time=t)], _default_or_error)

    def _a_updateLeverage(self, action: dict[str, Any], user: str) -> Plan:
        a, cross, lev = action.get("asset"), action.get("isCross"), action.get("leverage")
        if not isinstance(cross, bool) or not _is_int(lev) or not 0 <= lev < 2**32:
            raise BadRequest("updateLeverage")
        if self._spec(a) is None:
            raise ActionError(E.UNKNOWN_ASSET)
        return Plan([C.UpdateLeverage(ts=0, user=user, asset=a, is_cross=cross, leverage=lev)], _default_or_error)

    def _a_updateIsolatedMargin(self, action: dict[str, Any], user: str) -> Plan:
        a, ntli = action.get("asset"), action.get("ntli")
        if not _is_int(ntli) or not -(2**63) <= ntli < 2**63:
            raise BadRequest("ntli: expected an integer")
        if self._spec(a) is None:
            raise ActionError(E.UNKNOWN_ASSET)
        return Plan([C.UpdateIsolatedMargin(ts=0, user=user, asset=a, usd=ntli)], _default_or_error)

    def _a_noop(self, action: dict[str, Any], user: str) -> Plan:
        return Plan([C.Noop(ts=0, user=user)], _default_or_error)

    def _a_setReferrer(self, action: dict[str, Any], user: str) -> Plan:
        """Accepted without effect: perpbox has no referral programme (ccxt sends this on its own)."""
        return Plan([C.Noop(ts=0, user=user)], _default_or_error)

    def _a_approveAgent(self, action: dict[str, Any], user: str) -> Plan:
        agent = _address(action.get("agentAddress"))
        name = action.get("agentName") or ""
        if not isinstance(name, str):
            raise BadRequest("agentName")
        valid_until = 0
        m = VALID_UNTIL.match(name)
        if m:
            name, valid_until = m.group(1), int(m.group(2))
        bad = self.ex.reads.agent_approval_error(user, agent, name, valid_until, self.now())
        if bad is not None:  # refused before the log; the engine checks the same rule again
            raise ActionError(bad)
        return Plan([C.ApproveAgent(ts=0, user=user, agent=agent, name=name, valid_until=valid_until)],
                    _default_or_error)

    def _a_approveBuilderFee(self, action: dict[str, Any], user: str) -> Plan:
        builder = _address(action.get("builder"))
        rate = action.get("maxFeeRate")
        try:
            tenths = Decimal(str(rate).rstrip("%")) * 1000 if isinstance(rate, str) and rate.endswith("%") else None
        except InvalidOperation:
            tenths = None
        if tenths is None or tenths != tenths.to_integral_value():
            raise ActionError(E.INVALID_BUILDER_FEE)
        return Plan([C.ApproveBuilderFee(ts=0, user=user, builder=builder, max_fee=int(tenths))], _default_or_error)

    def _a_usdSend(self, action: dict[str, Any], user: str) -> Plan:
        dst = _address(action.get("destination"))
        usd = parse_units(action.get("amount"), 6)
        if usd is None or usd <= 0:
            raise ActionError(E.INSUFFICIENT_TRANSFER)
        return Plan([C.Transfer(ts=0, src=user, dst=dst, usd=usd)], _default_or_error)

    def _a_withdraw3(self, action: dict[str, Any], user: str) -> Plan:
        """Withdrawal leaves the exchange (no bridge here); the venue's $1 fee is not charged."""
        _address(action.get("destination"))
        usd = parse_units(action.get("amount"), 6)
        if usd is None or usd <= 0:
            raise ActionError(E.INSUFFICIENT_WITHDRAW)
        return Plan([C.Withdraw(ts=0, user=user, usd=usd)], _default_or_error)

    def _a_usdClassTransfer(self, action: dict[str, Any], user: str) -> Plan:
        """USDC between the perp account and the spot wallet: ``amount`` is ``"12.5"`` or
        ``"12.5 subaccount:0x…"`` (for a sub-account of the signer); ``toPerp`` gives the direction."""
        amount, to_perp = action.get("amount"), action.get("toPerp")
        if not isinstance(amount, str) or not isinstance(to_perp, bool):
            raise BadRequest("usdClassTransfer")
        text, _, owner = amount.partition(" subaccount:")
        if owner:
            owner = _address(owner)
            acct = self.ex.reads.account(owner)
            if acct is None or acct.master != user:
                raise ActionError(E.INVALID_SUBACCOUNT_TRANSFER.format(src=user, dst=owner))
        usd = parse_units(text, 6)
        if usd is None or usd <= 0:
            raise ActionError(E.INSUFFICIENT_TRANSFER)
        perp = owner or user
        src, dst = (spot_wallet(perp), perp) if to_perp else (perp, spot_wallet(perp))
        return Plan([C.Transfer(ts=0, src=src, dst=dst, usd=usd)], _default_or_error)

    def _a_sendAsset(self, action: dict[str, Any], user: str) -> Plan:
        """USDC between clearinghouses (``""`` the first perp dex, a HIP-3 dex, ``"spot"``), users
        and sub-accounts: ``fromSubAccount`` (``""`` or a sub-account of the signer) sends instead of
        the signer.  Standard accounts keep one balance per dex, so this is how a HIP-3 dex is
        funded.  Every refusal is answered before the log; the engine checks the same rules again."""
        return Plan([self._send_asset(action, user)], _default_or_error)

    def _a_agentSendAsset(self, action: dict[str, Any], user: str) -> Plan:
        """``sendAsset`` signed as an L1 action by an API wallet (or the user): only to the same
        user or one of its sub-accounts."""
        cmd = self._send_asset(action, user)
        dst = self.ex.reads.account(cmd.dst)
        if cmd.dst != user and (dst is None or dst.master != user):
            raise ActionError(E.AGENT_SEND)
        return Plan([cmd], _default_or_error)

    def _send_asset(self, action: dict[str, Any], user: str) -> C.SendAsset:
        fields = [action.get(k) for k in ("destination", "sourceDex", "destinationDex", "token", "amount")]
        sub = action.get("fromSubAccount", "")
        if not all(isinstance(f, str) for f in fields) or not isinstance(sub, str):
            raise BadRequest("sendAsset: destination, sourceDex, destinationDex, token, amount must be strings")
        _, src_dex, dst_dex, token, amount = fields
        dst = _address(fields[0])
        name, _, token_id = str(token).partition(":")
        if name != "USDC" or token_id.lower() != USDC_SEND_TOKEN[5:]:
            raise ActionError(E.INVALID_TOKEN.format(token=USDC_SEND_TOKEN))
        usd = parse_units(amount, 6)
        if usd is None or not 0 < usd < U64:
            raise ActionError(E.INVALID_AMOUNT)
        src = user
        if sub:
            src = _address(sub)
            acct = self.ex.reads.account(src)
            if acct is None or acct.master != user:
                raise ActionError(E.INVALID_SUBACCOUNT_TRANSFER.format(src=user, dst=src))
        bad = self.ex.reads.send_asset_error(user, src, dst, str(src_dex), str(dst_dex), usd)
        if bad is not None:
            raise ActionError(bad)
        return C.SendAsset(ts=0, user=user, src=src, dst=dst, src_dex=str(src_dex), dst_dex=str(dst_dex), usd=usd)

    def _a_userDexAbstraction(self, action: dict[str, Any], user: str) -> Plan:
        """Standard accounts only: turning dex abstraction off is a no-op, on is refused."""
        if action.get("enabled") is not False:
            raise ActionError(ABSTRACTION_UNSUPPORTED)
        return Plan([C.Noop(ts=0, user=user)], _default_or_error)

    def _a_userSetAbstraction(self, action: dict[str, Any], user: str) -> Plan:
        if action.get("abstraction") not in ("disabled", "default"):
            raise ActionError(ABSTRACTION_UNSUPPORTED)
        return Plan([C.Noop(ts=0, user=user)], _default_or_error)

    def _a_subAccountTransfer(self, action: dict[str, Any], user: str) -> Plan:
        sub = _address(action.get("subAccountUser"))
        usd, deposit = action.get("usd"), action.get("isDeposit")
        if not _is_u64(usd) or not isinstance(deposit, bool):
            raise BadRequest("subAccountTransfer")
        acct = self.ex.reads.account(sub)
        if acct is None or acct.master != user:
            raise ActionError(E.INVALID_SUBACCOUNT_TRANSFER.format(src=user, dst=sub))
        src, dst = (user, sub) if deposit else (sub, user)
        return Plan([C.Transfer(ts=0, src=src, dst=dst, usd=usd)], _default_or_error)

    def _a_createSubAccount(self, action: dict[str, Any], user: str) -> Plan:
        name = action.get("name")
        if not isinstance(name, str):
            raise BadRequest("name")
        acct = self.ex.reads.account(user)
        assert acct is not None  # _plan refuses a user without an account before this
        n = len(acct.subs)
        bad = sub_account_error(name, n)
        if bad is not None:
            raise ActionError(bad)
        sub = "0x" + keccak(text=f"{user}:sub:{n}").hex()[-40:]  # deterministic, like the venue's

        def respond(results: list[Response]) -> dict[str, Any]:
            res = results[0]
            if isinstance(res, Error):
                return err(res.message)
            return {"status": "ok", "response": {"type": "createSubAccount", "data": sub}}

        return Plan([C.CreateSubAccount(ts=0, master=user, sub=sub, name=name)], respond)

    def _a_perpDeploy(self, action: dict[str, Any], user: str) -> Plan:
        if "setOracle" in action:
            return self._set_oracle(action["setOracle"], user)
        if "haltTrading" in action:
            h = action["haltTrading"]
            spec = self._coin(h.get("coin") if isinstance(h, dict) else None)
            if not isinstance(h.get("isHalted"), bool):
                raise BadRequest("isHalted")
            return Plan([C.HaltTrading(ts=0, asset=spec.asset, halted=h["isHalted"], user=user)], _default_or_error)
        if "setOpenInterestCaps" in action:
            dex, caps = self._per_coin(action["setOpenInterestCaps"], _oi_cap)
            return Plan([C.SetOpenInterestCaps(ts=0, user=user, dex=dex, caps=caps)], _default_or_error)
        if "setFundingMultipliers" in action:
            dex, mults = self._per_coin(action["setFundingMultipliers"], _funding_multiplier)
            return Plan([C.SetFundingMultipliers(ts=0, user=user, dex=dex, multipliers=mults)], _default_or_error)
        if "registerAsset2" in action or "registerAsset" in action:
            return Plan([_register_asset(action.get("registerAsset2") or action.get("registerAsset"), user)],
                        _default_or_error)
        if "insertMarginTable" in action:
            return Plan([_insert_margin_table(action["insertMarginTable"], user)], _default_or_error)
        if "setMarginTableIds" in action:
            dex, ids = self._per_coin(action["setMarginTableIds"], _table_id)
            return Plan([C.SetMarginTableIds(ts=0, user=user, dex=dex, ids=ids)], _default_or_error)
        raise ActionError(E.UNSUPPORTED_PERP_DEPLOY)

    def _coin(self, coin: Any) -> Any:
        """A HIP-3 market by its coin name (``xyz:SILVER``; the bare ``SILVER`` is accepted too)."""
        # by asset: HIP-3 assets are numbered by dex index, so a bare name two dexes share is the
        # first-listed dex's
        for spec in self.ex.reads.markets():
            if spec.dex and coin in (coin_name(spec), spec.name):
                return spec
        raise ActionError(E.UNKNOWN_COIN.format(coin=coin))

    def _per_coin(self, pairs: Any, convert: Callable[[Any, Any], int]) -> tuple[str, dict[int, int]]:
        """``[[coin, value], …]`` of a deployer action as (the coins' dex, {asset: converted value})."""
        if not isinstance(pairs, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in pairs):
            raise BadRequest("expected a list of [coin, value] pairs")
        dex = ""
        out: dict[int, int] = {}
        for coin, value in pairs:
            spec = self._coin(coin)
            dex = spec.dex
            out[spec.asset] = convert(spec, value)
        return dex, out

    def _set_oracle(self, body: Any, user: str) -> Plan:
        if not isinstance(body, dict) or not isinstance(body.get("dex"), str):
            raise BadRequest("setOracle")

        def pxs(pairs: Any) -> dict[int, int]:
            return self._per_coin(pairs, _oracle_px)[1]

        cmd = C.SetOracle(ts=0, user=user, dex=body["dex"], oracle_pxs=pxs(body.get("oraclePxs", [])),
                          mark_pxs=[pxs(m) for m in body.get("markPxs", [])],
                          external_perp_pxs=pxs(body.get("externalPerpPxs", [])))
        return Plan([cmd], _default_or_error)


def _register_asset(body: Any, user: str) -> C.RegisterAsset:
    """``registerAsset2`` (``marginMode``) or the older ``registerAsset`` (``onlyIsolated``, read
    as ``noCross``: isolated only).  The coin may carry its ``dex:`` prefix."""
    if not isinstance(body, dict) or not isinstance(body.get("assetRequest"), dict):
        raise BadRequest("registerAsset: assetRequest")
    req, dex = body["assetRequest"], body.get("dex")
    coin, szd, table_id = req.get("coin"), req.get("szDecimals"), req.get("marginTableId")
    if not isinstance(dex, str) or not isinstance(coin, str) or not _is_int(szd) or not _is_int(table_id):
        raise BadRequest("registerAsset: dex, coin, szDecimals, marginTableId")
    coin = coin.removeprefix(f"{dex}:")
    mode = req.get("marginMode", "noCross" if req.get("onlyIsolated") else "normal")
    if not 0 <= szd <= 5:
        raise ActionError(INVALID_SZ_DECIMALS)
    oracle_px = _parse_loose_px(req.get("oraclePx"), 6 - szd)
    if oracle_px is None:
        raise ActionError(E.INVALID_PRICE)
    schema = body.get("schema")
    full_name = schema.get("fullName", "") if isinstance(schema, dict) else ""
    return C.RegisterAsset(ts=0, user=user, dex=dex, coin=coin, sz_decimals=szd, oracle_px=oracle_px,
                           margin_table_id=table_id, margin_mode=str(mode), full_name=str(full_name or ""))


def _insert_margin_table(body: Any, user: str) -> C.InsertMarginTable:
    """``{dex, marginTable: {description, marginTiers: [{lowerBound (USD), maxLeverage}]}}``."""
    table = body.get("marginTable") if isinstance(body, dict) else None
    tiers = table.get("marginTiers") if isinstance(table, dict) else None
    if not isinstance(table, dict) or not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
        raise BadRequest("insertMarginTable")
    if not isinstance(body.get("dex"), str):
        raise BadRequest("insertMarginTable")
    try:
        parsed = [(_usd_int(t.get("lowerBound")), t.get("maxLeverage")) for t in tiers]
        if not all(_is_int(lev) for _, lev in parsed):
            raise ValueError("maxLeverage")
        margin_table = MarginTable.hyperliquid(parsed, str(table.get("description", "")))
    except ValueError:
        raise ActionError(INVALID_TABLE) from None
    return C.InsertMarginTable(ts=0, user=user, dex=body["dex"], table=margin_table)


def _usd_int(value: Any) -> int:
    """A whole-dollar amount sent as an integer or a decimal string without a fraction."""
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and (units := parse_units(value, 0)) is not None:
        return units
    raise ValueError("lowerBound")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_u64(value: Any) -> bool:
    return _is_int(value) and 0 <= value < U64


def _missing_order(asset: int) -> str:
    """A cancel's miss as the venue words it: with the request's asset (errors.MISSING_ORDER's sources).
    What the venue answers for an asset that does not exist is not recorded; the same string here."""
    return E.order_error(E.MISSING_ORDER, asset)


def _check_batch(items: list[Any]) -> None:
    if len(items) > MAX_BATCH:
        raise ActionError(E.TOO_MANY_ITEMS.format(limit=MAX_BATCH))


def _table_id(spec: Any, value: Any) -> int:
    if not _is_int(value):
        raise BadRequest("margin table id: expected an integer")
    return int(value)


def _oi_cap(spec: Any, cap: Any) -> int:
    if not isinstance(cap, int) or isinstance(cap, bool):
        raise BadRequest("cap: expected an integer")
    return cap * USD


def _funding_multiplier(spec: Any, x: Any) -> int:
    v = parse_units(x, 8)
    if v is None:
        raise ActionError(E.INVALID_FUNDING_MULTIPLIER)
    return v * RATE_SCALE // 10**8


def _oracle_px(spec: Any, px: Any) -> int:
    units = _parse_loose_px(px, spec.px_decimals)
    if units is None:
        raise ActionError(E.INVALID_PRICE)
    return units


def _default_or_error(results: list[Response]) -> dict[str, Any]:
    return default_or_error(results[0]) if results else ok_default()


def _address(value: Any) -> str:
    try:
        addr = signing.normalise_address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        raise BadRequest("invalid address")
    return addr


def _parse_loose_px(text: Any, decimals: int) -> int | None:
    """Deployer oracle prices may carry more decimals than the book's tick: rounded half-even to
    the price unit (the oracle is an input, not an order)."""
    if not isinstance(text, str) or parse_units(text, 30) is None:
        return None
    units = round(Decimal(text).scaleb(decimals))
    return int(units) if units > 0 else None
