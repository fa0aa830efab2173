"""The live page's chart library: the plotly.js bundle that ships inside the ``plotly`` Python
package, served from the exchange itself (no CDN: the page works offline)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def plotly_bundle() -> bytes:
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()
