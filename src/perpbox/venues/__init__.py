"""Connectors to real venues (Hyperliquid native, others through ccxt), the recorder and the loaders.

Needs only ``perpbox.core`` and data libraries; nothing here imports the engine, api or store.
"""
