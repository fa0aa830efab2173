"""The HIP-3 deployer kit: the attestation log (``merkle``, ``note``) so far; the oracle relay and
the risk monitor build on it (issue 20)."""
