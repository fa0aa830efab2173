"""The relay's update loop (``deployer.relay.Relay``) against a scripted venue: what it signs, sends
and records, and what it does when the venue refuses or does not answer."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.utils.signing import sign_l1_action as sdk_sign_l1_action

from perpbox.deployer.attestlog import AttestLog, load_signer, verify_log
from perpbox.deployer.definition import AssetDefinition, OracleFile
from perpbox.deployer.relay import Relay, parse_book
from perpbox.deployer.sources import Quote

KEY = "0x" + "11" * 32
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class ScriptedSource:
    """A source answering the prices it is given, one per fetch."""

    def __init__(self, ident: str, prices: list[str | None]) -> None:
        self.id, self.prices = ident, list(prices)

    async def fetch(self, now_ms: int) -> Quote | None:
        px = self.prices.pop(0)
        if px == "boom":
            raise ConnectionError("venue down")
        return None if px is None else Quote(self.id, Decimal(px), now_ms)

    async def aclose(self) -> None:
        pass


class ScriptedVenue:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    async def info(self, body: dict[str, Any]) -> Any:
        assert body == {"type": "metaAndAssetCtxs", "dex": "xyz"}
        meta = {"universe": [{"name": "xyz:GOLD", "szDecimals": 3}, {"name": "xyz:SILVER", "szDecimals": 2}]}
        return [meta, [{"oraclePx": "2650.5"}, {"oraclePx": "32"}]]

    async def exchange(self, payload: dict[str, Any]) -> Any:
        self.sent.append(payload)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


OK = {"status": "ok", "response": {"type": "default"}}


def _relay(venue: ScriptedVenue, gold: list[str | None], silver: list[str | None], **kw: Any) -> Relay:
    assets = (AssetDefinition(coin="xyz:SILVER", sources=()),
              AssetDefinition(coin="xyz:GOLD", sources=(), mark_inputs=()))
    defn = OracleFile(id="t", sha256="ab" * 32, interval_ms=3_000, assets=assets, base_dir=Path("."))
    clock = iter(range(T0, T0 + 10**9, 3_000))
    return Relay(defn, venue, KEY, clock=lambda: next(clock), **kw,
                 extra_sources={"xyz:SILVER": [ScriptedSource("s", silver)], "xyz:GOLD": [ScriptedSource("g", gold)]})


def test_an_update_is_one_sorted_signed_set_oracle_as_the_sdk_signs_it() -> None:
    venue = ScriptedVenue([OK])
    relay = _relay(venue, ["2651"], ["32.1"])
    asyncio.run(relay.start())
    record = asyncio.run(relay.update())
    (payload,) = venue.sent
    assert payload["action"] == {"type": "perpDeploy", "setOracle": {
        "dex": "xyz", "oraclePxs": [["xyz:GOLD", "2651"], ["xyz:SILVER", "32.1"]],
        "markPxs": [[["xyz:SILVER", "32.1"]]],  # GOLD has no mark input
        "externalPerpPxs": [["xyz:GOLD", "2651"], ["xyz:SILVER", "32.1"]]}}
    assert payload["nonce"] == T0 + 3_000  # the clock's first tick went to start()
    sdk_sig = sdk_sign_l1_action(Account.from_key(KEY), payload["action"], None, payload["nonce"], None, False)
    assert payload["signature"] == sdk_sig
    assert record["result"] == "ok" and record["setOracle"]["answer"] == OK
    assert record["signer"] == Account.from_key(KEY).address.lower()
    assert record["definition"] == {"id": "t", "sha256": "ab" * 32}
    assert [a["coin"] for a in record["assets"]] == ["xyz:SILVER", "xyz:GOLD"]
    assert record["assets"][0]["inputs"] == [{"source": "s", "weight": 1, "px": "32.1", "ts": T0 + 3_000,
                                              "status": "used", "role": "oracle"}]


def test_a_refused_update_does_not_move_the_base_of_the_next_step() -> None:
    refused = {"status": "err", "response": "Oracle price update too often."}
    venue = ScriptedVenue([refused, OK])
    relay = _relay(venue, ["2651", "2651"], ["33", "33"])
    asyncio.run(relay.start())
    first = asyncio.run(relay.update())
    second = asyncio.run(relay.update())
    assert first["result"] == "refused" and first["setOracle"]["answer"] == refused
    # both steps measured from the venue's 32: at most 32.32
    assert first["assets"][0]["oracle"] == second["assets"][0]["oracle"] == "32.32"
    assert second["result"] == "ok"


def test_a_venue_that_does_not_answer_is_recorded_and_the_relay_goes_on(tmp_path: Path) -> None:
    venue = ScriptedVenue([TimeoutError("read timed out"), OK])
    log = AttestLog(tmp_path / "attest", "xyz", load_signer(tmp_path / "k", "perpbox/xyz"))
    relay = _relay(venue, ["boom", "2651"], [None, "32.1"], attest=log)
    asyncio.run(relay.start())
    first = asyncio.run(relay.update())
    assert first["result"] == "refused"
    assert first["setOracle"]["answer"] == {"status": "err", "response": "TimeoutError: read timed out"}
    gold = first["assets"][1]
    assert gold["status"] == "held" and gold["inputs"][0]["error"] == "ConnectionError: venue down"
    assert first["assets"][0]["inputs"][0]["status"] == "none"
    asyncio.run(relay.update())
    assert relay.checkpoint() == 2
    log.close()
    report = verify_log(tmp_path / "attest")
    assert report.ok and report.records == 2 and report.checkpoints == 1


def test_a_dry_run_signs_and_records_but_sends_nothing() -> None:
    venue = ScriptedVenue([])
    relay = _relay(venue, ["2651"], ["32.1"], dry_run=True)
    asyncio.run(relay.start())
    record = asyncio.run(relay.update())
    assert venue.sent == [] and record["result"] == "dry_run"
    assert record["setOracle"]["answer"] == {"dryRun": True} and "signature" in record["setOracle"]


def test_an_asset_the_venue_does_not_list_is_refused_at_start() -> None:
    assets = (AssetDefinition(coin="xyz:COPPER", sources=()),)
    defn = OracleFile(id="t", sha256="00", interval_ms=3_000, assets=assets, base_dir=Path("."))
    with pytest.raises(ValueError, match="xyz:COPPER is not listed"):
        asyncio.run(Relay(defn, ScriptedVenue([]), KEY).start())


def test_l2_book_levels_are_read_exactly_in_units_and_lots() -> None:
    raw = {"coin": "xyz:SILVER", "time": 1, "levels": [[{"px": "32.01", "sz": "10.5", "n": 1},
                                                        {"px": "bad", "sz": "1", "n": 1}],
                                                       [{"px": "32.03", "sz": "0.01", "n": 2}]]}
    book = parse_book(raw, 4, 2)
    assert book.bids == [(320100, 1050)] and book.asks == [(320300, 1)]
    assert parse_book({"levels": "x"}, 4, 2).bids == ()


def test_a_halt_definition_sends_halt_trading_once_then_holds() -> None:
    from perpbox.market.oracle import OnInsufficient

    venue = ScriptedVenue([OK, OK, OK])
    assets = (AssetDefinition(coin="xyz:SILVER", sources=(), on_insufficient=OnInsufficient.HALT),)
    defn = OracleFile(id="t", sha256="00", interval_ms=3_000, assets=assets, base_dir=Path("."))
    clock = iter(range(T0, T0 + 10**9, 3_000))
    relay = Relay(defn, venue, KEY, clock=lambda: next(clock),
                  extra_sources={"xyz:SILVER": [ScriptedSource("s", [None, None])]})
    asyncio.run(relay.start())
    first = asyncio.run(relay.update())
    second = asyncio.run(relay.update())
    assert [p["action"] for p in venue.sent[:1]] == [
        {"type": "perpDeploy", "haltTrading": {"coin": "xyz:SILVER", "isHalted": True}}]
    assert [p["action"]["type"] for p in venue.sent] == ["perpDeploy"] * 3
    assert "setOracle" in venue.sent[1]["action"] and "setOracle" in venue.sent[2]["action"]
    assert first["actions"][0]["answer"] == OK and second["actions"] == []
    assert first["assets"][0]["status"] == second["assets"][0]["status"] == "halted"
    assert first["assets"][0]["oracle"] == "32"  # the venue's price, held
