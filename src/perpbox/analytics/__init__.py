"""Market-quality metrics and reports, the scanner and funding arithmetic (floats are fine here:
analytics reads market data, it never holds exchange state)."""
