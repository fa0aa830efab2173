"""The oracle relay (``perpbox deployer run``): every interval, fetch each asset's sources, price it
(``deployer.compute``), sign one ``perpDeploy setOracle`` with the deployer's key, send it, and
write the attempt — inputs, steps, clamps, the exact action and the venue's answer — to the
attestation log.  Failed attempts are recorded like successful ones.

The venue is anything that answers Hyperliquid's ``/info`` and ``/exchange``: the real venue by
URL, ``perpbox serve`` by URL, or (for ``perpbox serve``'s own built-in deployer) its handlers
in-process.  The relay keeps the last *accepted* prices as its state: a refused update does not
move the base the next update's 1% step is measured from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from perpbox import __version__
from perpbox.deployer import compute
from perpbox.deployer.attestlog import AttestLog
from perpbox.deployer.compute import AssetState, AssetUpdate, Book, Fetched
from perpbox.deployer.definition import AssetDefinition, OracleFile
from perpbox.deployer.signer import ActionSender, VenueClient, accepted
from perpbox.deployer.sources import Source, SourceSpec, build_source
from perpbox.market.oracle import OnInsufficient

log = logging.getLogger("perpbox.relay")

CHECKPOINT_EVERY_MS = 3_600_000  # the guidance: a checkpoint every hour
SOURCE_TIMEOUT_S = 2.0
RECORD_VERSION = 1
STATUS_LEVEL = {"ok": 0, "held": 1, "book": 2, "halted": 3}


class HttpVenue:
    """A Hyperliquid-compatible venue by URL (mainnet, testnet or ``perpbox serve``)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout)

    async def info(self, body: dict[str, Any]) -> Any:
        r = await self.client.post(self.url + "/info", json=body)
        r.raise_for_status()
        return r.json()

    async def exchange(self, payload: dict[str, Any]) -> Any:
        r = await self.client.post(self.url + "/exchange", json=payload)
        if r.status_code != 200:
            return {"status": "err", "response": f"HTTP {r.status_code}: {r.text[:300]}"}
        return r.json()

    async def aclose(self) -> None:
        await self.client.aclose()


class InProcessVenue:
    """``perpbox serve``'s own handlers, for its built-in deployer."""

    def __init__(self, info: Callable[[dict[str, Any]], Any],
                 exchange: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self._info, self._exchange = info, exchange

    async def info(self, body: dict[str, Any]) -> Any:
        return self._info(body)

    async def exchange(self, payload: dict[str, Any]) -> Any:
        return await self._exchange(payload)


Sourced = list[tuple[SourceSpec, Source]]  # each source with the definition entry it came from
PROGRAMMATIC = SourceSpec(kind="callback")  # the spec of a source handed in by code (extra_sources)


@dataclass
class Market:
    defn: AssetDefinition
    sz_decimals: int
    sources: Sourced
    anchors: Sourced
    external: Sourced
    state: AssetState = field(default_factory=AssetState)

    @property
    def px_decimals(self) -> int:
        return 6 - self.sz_decimals


def _units(text: Any, decimals: int) -> int:
    try:
        return compute.to_units(Decimal(str(text)), decimals)
    except (InvalidOperation, ValueError):
        return 0


def parse_book(raw: Any, px_decimals: int, sz_decimals: int) -> Book:
    """An ``l2Book`` answer in price units and lots (exact decimals; malformed levels skipped)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("levels"), list) or len(raw["levels"]) != 2:
        return Book()

    def side(levels: Any) -> list[tuple[int, int]]:
        out = []
        for lv in levels if isinstance(levels, list) else []:
            if isinstance(lv, dict):
                px, sz = _units(lv.get("px"), px_decimals), _units(lv.get("sz"), sz_decimals)
                if px > 0 and sz > 0:
                    out.append((px, sz))
        return out

    return Book(bids=side(raw["levels"][0]), asks=side(raw["levels"][1]))


class RelayMetrics:
    """The relay's Prometheus metrics, in their own registry (so ``perpbox serve`` may run one)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.updates = Counter("perpbox_relay_updates", "setOracle attempts by result", ["result"],
                               registry=self.registry)
        self.last_success = Gauge("perpbox_relay_last_success_timestamp_seconds",
                                  "When the venue last accepted a setOracle", registry=self.registry)
        self.live = Gauge("perpbox_relay_live_sources", "Sources used in the last update", ["coin"],
                          registry=self.registry)
        self.level = Gauge("perpbox_relay_degraded", "0 ok, 1 held, 2 from the book, 3 halted", ["coin"],
                           registry=self.registry)
        self.clamped = Gauge("perpbox_relay_clamp_binding", "1 while a clamp binds", ["coin", "clamp"],
                             registry=self.registry)
        self.oracle = Gauge("perpbox_relay_oracle_price", "The last oracle price sent (USD)", ["coin"],
                            registry=self.registry)

    def observe(self, up: AssetUpdate, px_decimals: int) -> None:
        self.live.labels(up.coin).set(sum(1 for r in up.inputs if r.get("role") == "oracle"
                                          and r["status"] == "used"))
        self.level.labels(up.coin).set(STATUS_LEVEL[up.status])
        bound = {c["clamp"] for c in up.clamps}
        for name in ("step", "day", "discovery_band", "anchor_band", "external_day"):
            self.clamped.labels(up.coin, name).set(1 if name in bound else 0)
        self.oracle.labels(up.coin).set(float(Decimal(up.oracle).scaleb(-px_decimals)))


class Relay:
    def __init__(self, definition: OracleFile, venue: VenueClient, key_hex: str, *, attest: AttestLog | None = None,
                 dry_run: bool = False, is_mainnet: bool = False, clock: Callable[[], int] | None = None,
                 checkpoint_every_ms: int = CHECKPOINT_EVERY_MS, metrics: RelayMetrics | None = None,
                 extra_sources: dict[str, Sequence[Source]] | None = None) -> None:
        self.defn = definition
        self.venue = venue
        self.sender = ActionSender(venue, key_hex, is_mainnet=is_mainnet, dry_run=dry_run)
        self.signer = self.sender.address
        self.attest = attest
        self.dry_run = dry_run
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.checkpoint_every_ms = checkpoint_every_ms
        self.metrics = metrics or RelayMetrics()
        self.extra_sources = extra_sources or {}
        self.markets: list[Market] = []
        self.last_checkpoint_ms = 0

    # -- setup ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the dex's assets (size decimals, current oracle) and build every source."""
        dex = self.defn.dex
        meta, ctxs = await self.venue.info({"type": "metaAndAssetCtxs", "dex": dex})
        universe = {u["name"]: (i, u["szDecimals"]) for i, u in enumerate(meta["universe"])}
        now = self.clock()
        self.last_checkpoint_ms = now
        for a in self.defn.assets:
            if a.coin not in universe:
                raise ValueError(f"{a.coin} is not listed on dex {dex!r} at this venue "
                                 f"(it lists {', '.join(universe) or 'nothing'})")
            i, szd = universe[a.coin]
            oracle = _units(ctxs[i].get("oraclePx"), 6 - szd)
            is_open = a.session is None or a.session.is_open(now)

            def build(specs: Sequence[SourceSpec], coin: str = a.coin) -> Sourced:
                return [(s, build_source(s, coin=coin, base_dir=self.defn.base_dir, start_ms=now)) for s in specs]

            extra = [(PROGRAMMATIC, src) for src in self.extra_sources.get(a.coin, ())]
            self.markets.append(Market(
                defn=a, sz_decimals=szd, sources=build(a.sources) + extra,
                anchors=build(a.anchors), external=build(a.external),
                state=AssetState(oracle=oracle, session_open=is_open, close_px=0 if is_open else oracle)))

    async def aclose(self) -> None:
        for m in self.markets:
            for _, s in m.sources + m.anchors + m.external:
                await s.aclose()

    # -- one update -----------------------------------------------------------------------------------
    async def _fetch(self, sources: Sourced, now: int) -> list[Fetched]:
        async def one(spec: SourceSpec, src: Source) -> Fetched:
            try:
                q = await asyncio.wait_for(src.fetch(now), SOURCE_TIMEOUT_S)
            except Exception as e:  # a failing source is an input of the record, never fatal
                return Fetched(spec=spec, source=src.id, error=f"{type(e).__name__}: {e}"[:300])
            return Fetched(spec=spec, source=src.id, quote=q)

        return list(await asyncio.gather(*(one(spec, src) for spec, src in sources)))

    async def _book(self, m: Market) -> Book:
        try:
            raw = await self.venue.info({"type": "l2Book", "coin": m.defn.coin})
        except Exception as e:  # no book: the off-hours rule holds, the book fallback holds
            log.warning("l2Book %s failed: %s", m.defn.coin, e)
            return Book()
        return parse_book(raw, m.px_decimals, m.sz_decimals)

    async def update(self) -> dict[str, Any]:
        """One update attempt; the record written for it."""
        now = self.clock()
        updates: list[AssetUpdate] = []
        for m in self.markets:
            d = m.defn
            fetched = await self._fetch(m.sources, now)
            anchors = await self._fetch(m.anchors, now)
            external = await self._fetch(m.external, now)
            closed = d.session is not None and not d.session.is_open(now)
            book = await self._book(m) if closed or d.on_insufficient is OnInsufficient.BOOK else Book()
            updates.append(compute.price_asset(d, m.state, now, m.px_decimals, fetched, anchors, external, book))
        others = [await self.sender.send(a, now) for up in updates for a in up.actions]
        action = self.set_oracle_action(updates)
        sent = await self.sender.send(action, now)
        ok = self.dry_run or accepted(sent["answer"])
        for m, up in zip(self.markets, updates):
            halt_sent = any((accepted(o["answer"]) or self.dry_run) and o["action"].get("haltTrading", {}).get("coin")
                            == up.coin for o in others)
            if ok:
                m.state = up.state
            if halt_sent:  # halted even when the setOracle after it was refused
                m.state = replace(m.state, halted=True)
            self.metrics.observe(up, m.px_decimals)
            if up.status != "ok" or up.clamps:
                log.warning("%s: %s%s", up.coin, up.status,
                            "".join(f", {c['clamp']} clamp {c['from']}→{c['to']}" for c in up.clamps))
        result = "dry_run" if self.dry_run else "ok" if ok else "refused"
        self.metrics.updates.labels(result).inc()
        if ok and not self.dry_run:
            self.metrics.last_success.set(now / 1000)
        if not ok:
            log.warning("setOracle refused: %s", sent["answer"])
        record = {
            "v": RECORD_VERSION, "time": now, "dex": self.defn.dex, "signer": self.signer,
            "code": f"perpbox {__version__}",
            "definition": {"id": self.defn.id, "sha256": self.defn.sha256},
            "assets": [self._asset_record(up, m) for up, m in zip(updates, self.markets)],
            "setOracle": sent, "actions": others, "result": result,
        }
        if self.attest is not None:
            self.attest.append(record)
            if now - self.last_checkpoint_ms >= self.checkpoint_every_ms:
                self.checkpoint()
        return record

    def checkpoint(self) -> int | None:
        self.last_checkpoint_ms = self.clock()
        return self.attest.checkpoint() if self.attest is not None else None

    @staticmethod
    def _asset_record(up: AssetUpdate, m: Market) -> dict[str, Any]:
        def fmt(units: int) -> str:
            return compute.fmt_units(units, m.px_decimals)

        return {"coin": up.coin, "session": up.session, "status": up.status, "inputs": up.inputs, "steps": up.steps,
                "clamps": up.clamps, "oracle": fmt(up.oracle), "external": fmt(up.external),
                "marks": [fmt(x) for x in up.marks]}

    def set_oracle_action(self, updates: Sequence[AssetUpdate]) -> dict[str, Any]:
        """The ``perpDeploy setOracle`` action, every list sorted as the venue requires."""
        by_coin = {m.defn.coin: m for m in self.markets}

        def px(up: AssetUpdate, units: int) -> list[str]:
            return [up.coin, compute.fmt_units(units, by_coin[up.coin].px_decimals)]

        width = max((len(up.marks) for up in updates), default=0)
        marks = [sorted(px(up, up.marks[k]) for up in updates if len(up.marks) > k) for k in range(width)]
        return {"type": "perpDeploy", "setOracle": {
            "dex": self.defn.dex,
            "oraclePxs": sorted(px(up, up.oracle) for up in updates),
            "markPxs": marks,
            "externalPerpPxs": sorted(px(up, up.external) for up in updates)}}

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, count: int | None = None) -> int:
        """Update every interval until ``stop`` is set (or ``count`` updates); a checkpoint at the
        end.  The number of updates made."""
        done = 0
        interval = self.defn.interval_ms / 1000
        try:
            while not stop.is_set() and (count is None or done < count):
                started = time.monotonic()
                await self.update()
                done += 1
                if count is not None and done >= count:
                    break
                wait = max(0.0, interval - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            self.checkpoint()
        return done
