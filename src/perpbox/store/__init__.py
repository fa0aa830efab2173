"""Durable state: the command log, snapshots, the sequencer that writes them, recovery, read models
and nonce windows."""
