"""``perpbox hedge`` between two ``perpbox serve`` instances (each with its simulated traders, so the
maker's post-only orders get filled): every maker fill hedged, nothing left resting or unhedged,
the run's fills written to Parquet, wear reported."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import polars as pl
import pytest
from eth_account import Account

from .conftest import Server, wait_until


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("hedge")
    a = Server(root / "a", "--seed", "9", "--dev-faults").start()
    b = Server(root / "b", "--seed", "9", "--dev-faults").start()
    yield a, b
    a.stop()
    b.stop()


def _position(server: Server, user: str, coin: str) -> Decimal:
    state = server.info({"type": "clearinghouseState", "user": user})
    for row in state["assetPositions"]:  # type: ignore[index]
        if row["position"]["coin"] == coin:
            return Decimal(row["position"]["szi"])
    return Decimal(0)


def _accounts(a: Server, b: Server, tmp_path: Path) -> tuple[str, str]:
    """A maker account on ``a`` and a taker on ``b``, funded, in an accounts file; their addresses."""
    maker, taker = Account.create(), Account.create()
    a.fund(maker.address, "100000")
    b.fund(taker.address, "100000")
    (tmp_path / "m.key").write_text(maker.key.hex())
    (tmp_path / "t.key").write_text(taker.key.hex())
    (tmp_path / "accounts.toml").write_text(f'[m]\nvenue = "hyperliquid:{a.url}"\nkey_file = "m.key"\n'
                                            f'[t]\nvenue = "hyperliquid:{b.url}"\nkey_file = "t.key"\n')
    return maker.address.lower(), taker.address.lower()


def _hedge(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "perpbox.cli", "hedge", "--accounts", str(tmp_path / "accounts.toml"), "--maker",
            "m", "--taker", "t", "--coin", "BTC", "--size", "0.001", "--requote-s", "3", *extra]


def test_a_hedge_run_leaves_both_legs_flat_and_nothing_resting(venues: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    out = subprocess.run(_hedge(tmp_path, "--iterations", "2", "--ledger", str(tmp_path / "runs")),
                         capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert b"hedge BTC: 2 iterations" in out.stdout and b"incidents=0 overshoots=0" in out.stdout
    # walking up to 0.001 and back (flat at the end unless a partial fill was re-posted); hedged
    # the other way, always
    pos_m, pos_t = _position(a, user_m, "BTC"), _position(b, user_t, "BTC")
    assert pos_m == -pos_t and abs(pos_m) <= Decimal("0.001")
    assert a.info({"type": "openOrders", "user": user_m}) == []
    assert b.info({"type": "openOrders", "user": user_t}) == []
    (parquet,) = (tmp_path / "runs").glob("*.parquet")
    rows = pl.read_parquet(parquet)
    fills = rows.filter(pl.col("kind") == "fill")
    sizes = {leg: sum(Decimal(x) for x in fills.filter(pl.col("leg") == leg)["size"]) for leg in ("maker", "taker")}
    assert sizes == {"maker": pos_m, "taker": pos_t}  # every fill of the run is in the file
    assert fills.filter(pl.col("leg") == "maker")["maker"].all()  # post-only: never a taker
    assert not fills.filter(pl.col("leg") == "taker")["maker"].any()  # IOC: always a taker
    assert fills["decision_mid"].null_count() == 0  # every order's decision mid was kept
    # the farmers' wear from the file by its definition (hedging-bots.md §1): the loss on both venues
    # (what the trades paid, fees, funding, what is open marked at the sidecar's end mids) over the
    # maker's volume, against the figure the run printed
    meta = json.loads(parquet.with_suffix(".json").read_text())
    mids = {v: Decimal(m) for v, m in meta["end_mids"].items()}
    pnl = Decimal(0)
    for r in fills.iter_rows(named=True):
        pnl += -Decimal(r["size"]) * Decimal(r["px"]) - Decimal(r["fee"])
    for r in rows.filter(pl.col("kind") == "funding").iter_rows(named=True):
        pnl += Decimal(r["usd"])
    pnl += pos_m * mids[meta["maker_venue"]] + pos_t * mids[meta["taker_venue"]]
    maker_volume = sum(abs(Decimal(r["size"])) * Decimal(r["px"]) for r in fills.iter_rows(named=True)
                       if r["leg"] == "maker")
    printed = re.search(rb"wear_bps=(\S+)", out.stdout)
    assert printed is not None
    assert Decimal(printed.group(1).decode()) == (-pnl * 10_000 / maker_volume).quantize(Decimal("0.001"))


def test_a_dry_run_reads_both_venues_prints_the_plan_and_sends_nothing(venues: tuple[Server, Server],
                                                                       tmp_path: Path) -> None:
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    out = subprocess.run(_hedge(tmp_path, "--iterations", "3", "--dry-run"), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    text = out.stdout.decode()
    assert "BUY 0.001 BTC post-only at" in text and "SELL 0.001 BTC IOC, limit" in text
    assert "every check passed" in text
    for srv, user in ((a, user_m), (b, user_t)):
        assert srv.info({"type": "openOrders", "user": user}) == []
        assert srv.info({"type": "userFills", "user": user}) == []
    # an order of 0.00001 BTC (about $1) is under Hyperliquid's $10 minimum on both venues
    small = subprocess.run(_hedge(tmp_path, "--size", "0.00001", "--iterations", "3", "--dry-run"),  # the last --size
                           capture_output=True, timeout=120)
    assert small.returncode == 1
    assert small.stdout.decode().count("under the minimum of 10 USD") == 2


def _fault(srv: Server, **body: object) -> None:
    r = httpx.post(srv.url + "/dev/fault", json=body, timeout=30)
    assert r.status_code == 200, r.text


class Exposure:
    """Samples the net exposure across both venues (maker position + taker position, read from the
    venues themselves) every 100 ms in a thread, while a run goes on."""

    def __init__(self, a: Server, user_m: str, b: Server, user_t: str) -> None:
        self.samples: list[tuple[float, Decimal]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(a, user_m, b, user_t), daemon=True)

    def _run(self, a: Server, user_m: str, b: Server, user_t: str) -> None:
        while not self._stop.is_set():
            try:
                net = _position(a, user_m, "BTC") + _position(b, user_t, "BTC")
            except httpx.HTTPError:  # a frozen venue: no reading, not a zero
                continue
            self.samples.append((time.monotonic(), net))
            self._stop.wait(0.1)

    def __enter__(self) -> Exposure:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def longest_unhedged_s(self) -> float:
        """The longest stretch of samples in a row with a net exposure."""
        longest, since = 0.0, None
        for t, net in self.samples:
            if net == 0:
                since = None
            else:
                since = t if since is None else since
                longest = max(longest, t - since)
        return longest


# How long a net exposure may last: --max-unhedged-ms (5 s by default) plus three reconciliations
# (3 s each: detection, and the two equal reads that show a venue has settled) plus 10 s of slack
# for a shared, loaded test machine.  A fault that stops the taker venue answering adds its length.
BOUND_S = 5 + 3 * 3 + 10


def _fault_mid_run(taker_venue: Server, taker: str, tmp_path: Path, args: list[str], exposure: Exposure | None = None,
                   fault_venue: Server | None = None, **fault: object) -> tuple[int, bytes, bytes]:
    """Run ``perpbox hedge``, arm ``fault`` (on ``fault_venue``, by default the taker's) once the
    taker holds a position; the exit code, stdout and stderr."""
    proc = subprocess.Popen(_hedge(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with exposure or contextlib.nullcontext():
            wait_until(lambda: _position(taker_venue, taker, "BTC") != 0, timeout=300)
            _fault(fault_venue or taker_venue, **fault)
            out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


@pytest.mark.parametrize("where", ["taker", "maker"])
def test_a_venue_rolled_back_is_rebuilt_from_its_fills_and_the_net_exposure_repaired(
        venues: tuple[Server, Server], tmp_path: Path, where: str) -> None:
    """The outage night: a venue's state goes back 2 s and the fills in between vanish (on the
    taker, the last hedge; on the maker, the last maker fill).  The bot sees positions no fill
    explains, waits for the venue to settle, rebuilds the legs from the fills that survived,
    hedges the net exposure the rollback left, and stops (exit 3) with a report — hedged, with
    nothing resting."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    with Exposure(a, user_m, b, user_t) as exposure:
        code, out, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "30", "--max-position", "0.003"],
                                        fault_venue=a if where == "maker" else b, kind="rollback", seconds=2)
    assert code == 3, err.decode()[-3000:]
    assert f"rollback: the {where} venue lost".encode() in err and b"stopped for an operator" in err
    assert b"unhedged=0" in out
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")
    assert a.info({"type": "openOrders", "user": user_m}) == []
    assert b.info({"type": "openOrders", "user": user_t}) == []
    assert exposure.longest_unhedged_s() < BOUND_S


def test_a_position_that_vanishes_without_a_fill_is_an_incident_until_the_venue_agrees_again(
        venues: tuple[Server, Server], tmp_path: Path) -> None:
    """The reported-zero bug: the taker venue shows no position for 8 s.  The bot reads it again,
    calls it an incident, stops opening and waits; when the venue agrees with the fills again it
    goes on and finishes."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    exposure = Exposure(a, user_m, b, user_t)
    code, out, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "5", "--max-position", "0.003"],
                                    exposure, kind="zero_positions", seconds=8)
    assert code == 0, err.decode()[-3000:]
    assert exposure.longest_unhedged_s() < BOUND_S
    assert b"incident:" in err and b"incident resolved" in err
    assert b"incidents=1" in out or b"incidents=2" in out
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")
    assert a.info({"type": "openOrders", "user": user_m}) == []


def test_hedges_refused_at_every_band_flatten_both_legs_and_exit_2(venues: tuple[Server, Server],
                                                                  tmp_path: Path) -> None:
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    _fault(b, kind="reject", match='"tif":"Ioc"', message="Order must have minimum value of $10.", count=1000)
    try:
        with Exposure(a, user_m, b, user_t) as exposure:
            out = subprocess.run(_hedge(tmp_path, "--iterations", "2"), capture_output=True, timeout=600)
    finally:
        _fault(b, kind="clear")
    assert out.returncode == 2, out.stderr.decode()[-3000:]
    assert exposure.longest_unhedged_s() < BOUND_S  # six banded attempts, then the flatten
    assert b"the hedge failed at every band: both legs flattened" in out.stderr
    assert _position(a, user_m, "BTC") == 0 and _position(b, user_t, "BTC") == 0  # the maker fill closed
    assert a.info({"type": "openOrders", "user": user_m}) == []


def test_fills_that_arrive_late_are_waited_for_never_hedged_twice(venues: tuple[Server, Server],
                                                                  tmp_path: Path) -> None:
    """The taker venue's fill feed runs 4 s late: a hedge it says filled keeps its reservation until
    its fills arrive (no second hedge), and the positions the feed does not explain yet are an
    incident that resolves."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    _fault(b, kind="delay_fills", ms=4_000, seconds=600)
    try:
        with Exposure(a, user_m, b, user_t) as exposure:
            # over REST: the fault delays the venue's fill record, not its WebSocket pushes
            out = subprocess.run(_hedge(tmp_path, "--iterations", "2", "--no-streams"), capture_output=True,
                                 timeout=600)
    finally:
        _fault(b, kind="clear")
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert b"overshoots=0" in out.stdout and b"unhedged=0" in out.stdout
    assert exposure.longest_unhedged_s() < BOUND_S
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")  # hedged exactly once


def test_a_stale_position_never_makes_the_bot_trade_on_it(venues: tuple[Server, Server], tmp_path: Path) -> None:
    """A position read 6 s old either agrees with the fills (nothing changed) or is an incident
    that waits for the venue; either way the run ends hedged, with nothing resting."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    # answers 6 s old: maybe from before a hedge
    exposure = Exposure(a, user_m, b, user_t)
    code, _, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "4", "--max-position", "0.002"],
                                  exposure, kind="stale_positions", seconds=6)
    assert code == 0, err.decode()[-3000:]
    assert exposure.longest_unhedged_s() < BOUND_S
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")
    assert a.info({"type": "openOrders", "user": user_m}) == []


def test_dropped_streams_reconnect_and_the_bot_reconciles_before_it_goes_on(venues: tuple[Server, Server],
                                                                           tmp_path: Path) -> None:
    """Every WebSocket of the taker venue is closed mid-run: the bot's streams reconnect and
    resubscribe, the fills made meanwhile are read from the venue's record, the bot reconciles
    against both venues, and the run ends hedged."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    exposure = Exposure(a, user_m, b, user_t)
    code, out, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "4", "--max-position", "0.002"],
                                    exposure, kind="ws_drop")
    assert code == 0, err.decode()[-3000:]
    assert b"reconnected (1) and resubscribed" in err  # the streams were in use, and came back
    assert b"a stream reconnected: reconciling against the venues" in err
    assert b"overshoots=0" in out and b"unhedged=0" in out and b"incidents=0" in out
    assert exposure.longest_unhedged_s() < BOUND_S
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")
    assert a.info({"type": "openOrders", "user": user_m}) == []
    assert b.info({"type": "openOrders", "user": user_t}) == []


def test_a_frozen_taker_venue_answers_late_and_the_run_still_ends_hedged(venues: tuple[Server, Server],
                                                                        tmp_path: Path) -> None:
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    exposure = Exposure(a, user_m, b, user_t)
    code, out, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "4", "--max-position", "0.002"],
                                    exposure, kind="freeze", seconds=4)
    assert code == 0, err.decode()[-3000:]
    assert b"overshoots=0" in out and b"unhedged=0" in out
    assert exposure.longest_unhedged_s() < BOUND_S + 4  # the taker venue answers nothing for 4 s
    assert _position(a, user_m, "BTC") == -_position(b, user_t, "BTC")
    assert a.info({"type": "openOrders", "user": user_m}) == []


def test_a_halt_that_settles_the_hedge_leg_stops_the_run_with_exit_3(venues: tuple[Server, Server],
                                                                     tmp_path: Path) -> None:
    """The taker venue halts BTC and settles positions at the mark: the hedge leg is gone without a
    fill.  That is an incident that never resolves: the maker is cancelled, nothing new is opened,
    and the run stops with exit 3 and says why.  If the halt lands while the next hedge is in flight
    instead, no band fills it and the bot flattens both legs (exit 2): flat either way."""
    a, b = venues
    user_m, user_t = _accounts(a, b, tmp_path)
    try:
        code, out, err = _fault_mid_run(b, user_t, tmp_path, ["--iterations", "6", "--max-position", "0.003",
                                                              "--incident-timeout-s", "5"],
                                        kind="halt", coin="BTC", seconds=3600)
    finally:
        _fault(b, kind="clear")
    if code == 2:  # the halt caught the next hedge in flight (the fault lands at a moment the bot does not
        # control): no band could fill it, so the bot flattened both legs and stopped: flat, nothing resting
        assert b"the hedge failed at every band: both legs flattened" in err, err.decode()[-3000:]
        assert _position(b, user_t, "BTC") == 0 and _position(a, user_m, "BTC") == 0
        assert a.info({"type": "openOrders", "user": user_m}) == []
        return
    assert code == 3, err.decode()[-3000:]
    assert b"unresolved incident: taker: venue says 0" in err and b"incidents=1" in out
    assert _position(b, user_t, "BTC") == 0 and _position(a, user_m, "BTC") != 0  # the exposure, reported
    assert a.info({"type": "openOrders", "user": user_m}) == []
