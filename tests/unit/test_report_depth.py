"""``perpbox report`` on a raw capture keeps the whole book, and a depth band the book data cannot
fill is reported as cut, with a loud warning (library warning, ``metrics.json``, page, CLI).

The capture is a small Binance USDⓈ-M-style file: a REST snapshot with 30 bid and 30 ask levels
$1 apart around 10,000.5 (1 bp = $1.00005), then a few diffs. The expected figures are sums
written out by hand from those levels.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpbox.analytics.report import DepthTruncatedWarning, build_report
from perpbox.cli import app
from perpbox.venues.captures import load_capture

LEVELS = 30
BIDS = [[f"{10_000 - i}.0", "1"] for i in range(LEVELS)]    # 10,000 .. 9,971
ASKS = [[f"{10_001 + i}.0", "2"] for i in range(LEVELS)]    # 10,001 .. 10,030


def _depth(U: int, u: int, pu: int, b: list, a: list, T: int) -> dict:
    return {"stream": "btcusdt@depth@0ms", "data": {"e": "depthUpdate", "E": T, "T": T, "s": "BTCUSDT",
                                                     "U": U, "u": u, "pu": pu, "b": b, "a": a}}


def _capture(path: Path) -> Path:
    msgs = [
        {"lastUpdateId": 100, "E": 1, "T": 1, "bids": BIDS, "asks": ASKS},
        _depth(100, 101, 99, [], [], T=1_000),                     # book = the snapshot
        _depth(102, 103, 101, [["9960.0", "5"]], [], T=2_000),     # a bid past the snapshot's deepest (9,971)
    ]
    with gzip.open(path, "wb") as fh:
        for i, m in enumerate(msgs):
            fh.write(f"{i + 1} {json.dumps(m)}\n".encode())
    return path


def test_raw_capture_report_keeps_more_than_20_levels(tmp_path):
    """±50 bps of 10,000.5 is 9,950.5 .. 10,050.5: every level of the book is inside, so the depth
    is all 30 bid levels (Σ px × 1) and all 30 ask levels (Σ px × 2); 20 levels would give
    Σ 9,981..10,000 + 2 × Σ 10,001..10,020."""
    cap = _capture(tmp_path / "c.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DepthTruncatedWarning)
        m = build_report([cap], out=tmp_path / "r.html")
    d = m["venues"]["binance-usdm"]["BTCUSDT"]["all"]["depth_usd"]
    bid_all = sum(10_000 - i for i in range(LEVELS))
    ask_all = 2 * sum(10_001 + i for i in range(LEVELS))
    first_book_both = bid_all + ask_all
    second_book_both = bid_all + ask_all  # the 9,960 bid is past the snapshot's range: not counted
    assert d["snapshots"] == 2
    assert d["50"]["both"]["median"] == pytest.approx((first_book_both + second_book_both) / 2, rel=1e-12)
    assert d["50"]["both"]["median"] != pytest.approx(sum(10_000 - i for i in range(20))
                                                      + 2 * sum(10_001 + i for i in range(20)))
    # ±5 bps: 9,995.5 .. 10,005.5 → bids 10,000..9,996 (5 levels), asks 10,001..10,005 (5 levels)
    assert d["5"]["both"]["median"] == pytest.approx(sum(range(9_996, 10_001)) + 2 * sum(range(10_001, 10_006)))
    assert d["5"]["truncated_share"] == 0.0
    # the book data ends at 9,971 / 10,030, inside ±50 bps: that band is cut in both books
    assert d["50"]["truncated_share"] == 1.0 and d["25"]["truncated_share"] == 0.0


def test_whole_book_stops_at_the_snapshot_edge(tmp_path):
    book = load_capture(_capture(tmp_path / "c.gz"), depth=None).frames["book"]
    assert [len(r) for r in book["bid_px"].to_list()] == [LEVELS, LEVELS]
    assert 9960.0 not in book["bid_px"].to_list()[1]
    assert load_capture(tmp_path / "c.gz", depth=20).frames["book"]["bid_px"].list.len().to_list() == [20, 20]


def test_a_truncated_band_warns_everywhere(tmp_path):
    cap = _capture(tmp_path / "c.gz")
    with pytest.warns(DepthTruncatedWarning, match=r"binance-usdm/BTCUSDT: .*±50 bps in all") as caught:
        m = build_report([cap], out=tmp_path / "r.html")
    assert len(caught) == 1
    assert m["warnings"] == [str(caught[0].message)]
    assert "±25 bps" not in m["warnings"][0] and "lower bounds" in m["warnings"][0]
    assert json.loads((tmp_path / "metrics.json").read_text())["warnings"] == m["warnings"]
    assert '<p class="warn"><b>Warning:</b> binance-usdm/BTCUSDT' in (tmp_path / "r.html").read_text()


def test_a_dataset_loaded_with_20_levels_warns_at_5_bps(tmp_path):
    """The trap the issue describes: 20 levels of this book reach 9,981 / 10,020, inside ±25 bps."""
    cap = _capture(tmp_path / "c.gz")
    with pytest.warns(DepthTruncatedWarning, match=r"±25 bps in all, ±50 bps in all"):
        m = build_report([cap], out=tmp_path / "r.html", depth=20)
    d = m["venues"]["binance-usdm"]["BTCUSDT"]["all"]["depth_usd"]
    assert d["10"]["truncated_share"] == 0.0 and d["25"]["truncated_share"] == 1.0


def test_no_warning_when_every_band_is_whole(tmp_path):
    """A book 100 levels deep at $1 spans ±99 bps of 10,000.5: no band is cut."""
    msgs = [{"lastUpdateId": 100, "bids": [[str(10_000 - i), "1"] for i in range(100)],
             "asks": [[str(10_001 + i), "1"] for i in range(100)]}, _depth(100, 101, 99, [], [], T=1_000)]
    path = tmp_path / "deep.gz"
    with gzip.open(path, "wb") as fh:
        for i, msg in enumerate(msgs):
            fh.write(f"{i + 1} {json.dumps(msg)}\n".encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthTruncatedWarning)
        m = build_report([path], out=tmp_path / "r.html")
    assert m["warnings"] == []
    assert 'class="warn"' not in (tmp_path / "r.html").read_text()


def test_cli_report_prints_the_warning(tmp_path):
    cap = _capture(tmp_path / "c.gz")
    res = CliRunner().invoke(app, ["report", "--venue-data", str(cap), "--out", str(tmp_path / "r.html")],
                             terminal_width=400)
    assert res.exit_code == 0, res.output
    assert "WARNING: depth truncated: binance-usdm/BTCUSDT" in res.stderr
    assert "±50 bps in all" in res.stderr
    assert "wrote" in res.stdout and "depth ±5 bps 1.5e+05 USD," in res.stdout  # ±5 bps is whole: no caveat


def test_cli_report_help_has_examples():
    res = CliRunner().invoke(app, ["report", "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "perpbox report --venue-data" in res.output and "--depth" in res.output
    res = CliRunner().invoke(app, ["load", "--help"], terminal_width=200)
    assert "--depth 0" in res.output
