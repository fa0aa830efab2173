"""The oracle definition of ``perpbox serve``'s built-in deployer, made from the served config:
each market of a HIP-3 dex priced from the server's own feed (one source, ``perpbox-feed``), with
the market's session and off-hours rule, the external perp price equal to the oracle and no mark
inputs (the venue's mark is then the local book's, moved at most 1% an update).

The definition is written beside the attestation log as ``definition.json`` (canonical bytes), and
its SHA-256 is what every record names, so a reader checks the definition the relay ran."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from perpbox.config import Dex
from perpbox.deployer.attestlog import canonical
from perpbox.deployer.definition import DEFAULT_INTERVAL_MS, AssetDefinition, OracleFile

FEED_SOURCE = "perpbox-feed"


def _describe(dex: Dex) -> dict[str, Any]:
    assets = []
    for m in dex.markets:
        o = m.spec.oracle
        session = None if o.session is None else {"name": o.session.name,
                                                  "open_windows": [list(w) for w in o.session.open_windows],
                                                  "closed_days": list(o.session.closed_days)}
        assets.append({"coin": m.spec.coin, "sources": [{"kind": FEED_SOURCE, "weight": 1}],
                       "session": session, "off_hours": {"ema_tau_ms": o.off_hours.ema_tau_ms,
                                                         "band_bps": o.off_hours.band_bps},
                       "external": "oracle", "mark_inputs": []})
    return {"id": f"perpbox-serve-{dex.name}", "interval_ms": DEFAULT_INTERVAL_MS, "assets": assets}


def builtin_definition(dex: Dex, out_dir: Path | None = None) -> OracleFile:
    """The definition (written to ``out_dir/definition.json`` when given)."""
    text = canonical(_describe(dex))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "definition.json").write_bytes(text)
    assets = tuple(AssetDefinition(coin=m.spec.coin, sources=(), session=m.spec.oracle.session,
                                   off_hours=m.spec.oracle.off_hours, mark_inputs=())
                   for m in dex.markets)
    return OracleFile(id=f"perpbox-serve-{dex.name}", sha256=hashlib.sha256(text).hexdigest(),
                      interval_ms=DEFAULT_INTERVAL_MS, assets=assets, base_dir=out_dir or Path("."))
