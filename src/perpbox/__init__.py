"""perpbox: a deterministic perpetual-futures exchange engine and the tools built on it."""

__version__ = "0.1.0"
