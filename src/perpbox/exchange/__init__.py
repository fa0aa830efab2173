"""The exchange: commands in, events out; triggers; state hash; replay."""

from perpbox.exchange.engine import Exchange

__all__ = ["Exchange"]
