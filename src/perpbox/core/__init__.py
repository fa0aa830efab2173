"""Fixed-point numbers, rounding helpers and the venue's error strings."""
