"""The exchange: commands in, events out; triggers; state hash; replay."""

from perpbox.exchange.engine import Exchange
from perpbox.exchange.reads import ExchangeReads

__all__ = ["Exchange", "ExchangeReads"]
