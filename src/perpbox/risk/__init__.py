"""Margin requirements and pre-trade checks (liquidation, backstop and ADL arrive later)."""

from perpbox.risk.margin import MarginView

__all__ = ["MarginView"]
