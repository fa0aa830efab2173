"""Market specifications: tick/lot rules, margin tables, fee schedules."""

from perpbox.market.margin import MarginTable, MarginTier
from perpbox.market.spec import FeeSchedule, MarginMode, MarketSpec

__all__ = ["FeeSchedule", "MarginMode", "MarginTable", "MarginTier", "MarketSpec"]
