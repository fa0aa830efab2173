"""Where the real market data shared beside the project lives (``../shared/data``; provenance and
licences in its README).  Tests read it in place, never copy it, and skip when it is absent."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
