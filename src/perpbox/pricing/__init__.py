"""Pricing: oracle aggregation and sessions, mark price, impact prices, funding."""
