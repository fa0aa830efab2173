"""Trader bots: the Venue interface and its adapters, hedge mode, wear and points accounting, the
position monitor."""
