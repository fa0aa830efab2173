"""Oracle definition files (``deployer.definition``): what they say, and the errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpbox.deployer.definition import DefinitionError, load_definition
from perpbox.market.oracle import OnInsufficient

FULL = """
id = "xyz-metals-v1"
interval_s = 3

[[asset]]
coin = "xyz:SILVER"
impact_notional_usd = 10000
margin_table_id = 10

[asset.oracle]
sources = [{ kind = "replay", path = "silver.csv", weight = 2, max_age_s = 10 },
           { kind = "ccxt", venue = "binance", symbol = "XAG/USDT:USDT", max_age_s = 2.5 }]
max_deviation_bps = 200
min_sources = 2
on_insufficient = "book"
session = "comex_metals"

[asset.oracle.off_hours]
ema_tau_s = 1800
band_bps = 300
anchors = [{ kind = "ccxt", venue = "kraken", symbol = "XAG/USD" }]
anchor_band_bps = 150
margin_table_id = 11

[asset.oracle.reopen]
max_step_bps = 50

[asset.external]
sources = [{ kind = "hyperliquid", coin = "xyz:SILVER" }]

[asset.mark]
inputs = ["oracle", "external"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "oracle.toml"
    p.write_text(text)
    return p


def test_a_full_definition_reads_as_written(tmp_path: Path) -> None:
    import hashlib

    path = _write(tmp_path, FULL)
    d = load_definition(path)
    assert d.id == "xyz-metals-v1" and d.interval_ms == 3_000 and d.dex == "xyz"
    assert d.sha256 == hashlib.sha256(FULL.encode()).hexdigest() and d.base_dir == tmp_path.resolve()
    (a,) = d.assets
    assert a.coin == "xyz:SILVER" and a.impact_notional_usd == 10_000 and a.margin_table_id == 10
    assert [(s.kind, s.weight, s.max_age_ms) for s in a.sources] == [("replay", 2, 10_000), ("ccxt", 1, 2_500)]
    assert a.sources[0].params == {"path": "silver.csv"}
    assert a.sources[1].params == {"venue": "binance", "symbol": "XAG/USDT:USDT"}
    assert a.max_deviation_bps == 200 and a.min_sources == 2 and a.on_insufficient is OnInsufficient.BOOK
    assert a.session is not None and a.session.name == "COMEX metals"
    assert a.off_hours.ema_tau_ms == 1_800_000 and a.off_hours.band_bps == 300
    assert [s.params["venue"] for s in a.anchors] == ["kraken"] and a.anchor_band_bps == 150
    assert a.off_hours_margin_table_id == 11 and a.reopen_step_bps == 50
    assert a.external[0].kind == "hyperliquid" and a.mark_inputs == ("oracle", "external")


def test_defaults_and_a_custom_session(tmp_path: Path) -> None:
    d = load_definition(_write(tmp_path, """
[[asset]]
coin = "abc:TSLA"
[asset.oracle]
sources = [{ kind = "synthetic", seed = 1, price = "250" }]
session = { name = "weekdays", open_windows = [[870, 1260]], closed_days = [20454] }
"""))
    assert d.id == "oracle" and d.interval_ms == 3_000
    (a,) = d.assets
    assert a.on_insufficient is OnInsufficient.HOLD and a.min_sources == 1 and a.max_deviation_bps == 500
    assert a.mark_inputs == ("oracle",) and a.reopen_step_bps == 100 and a.margin_table_id is None
    assert a.session is not None and a.session.open_windows == ((870, 1260),) and a.session.closed_days == (20454,)


@pytest.mark.parametrize(("text", "message"), [
    ('interval_s = 2\n[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]',
     "under the venue's 2.5 s minimum"),
    ('[[asset]]\ncoin = "A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]', "asset[0].coin"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = []', "asset[0].oracle.sources"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ weight = 1 }]', "asset[0].oracle.sources[0].kind"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic", weight = 0 }]',
     "asset[0].oracle.sources[0].weight"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\nmin_sources = 2',
     "asset[0].oracle.min_sources"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\non_insufficient = "panic"',
     "on_insufficient"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\nsesion = "us_equities"',
     "unknown key 'sesion'"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\nsession = "lse"',
     "unknown session 'lse'"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\n'
     '[asset.oracle.reopen]\nmax_step_bps = 150', "max_step_bps"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\n'
     '[asset.mark]\ninputs = ["oracle", "external", "oracle"]', "mark.inputs"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\n'
     '[[asset]]\ncoin = "y:B"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]', "same dex"),
    ('[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]\n'
     '[[asset]]\ncoin = "x:A"\n[asset.oracle]\nsources = [{ kind = "synthetic" }]', "defined twice"),
    ("[[asset]\n", "oracle.toml"),
])
def test_a_bad_definition_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        load_definition(_write(tmp_path, text))
