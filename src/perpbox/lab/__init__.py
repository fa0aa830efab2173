"""The stress lab: scenarios (TOML: markets in ``perpbox serve``'s config format, a population of
simulated participants, shocks, tunable keys), runs of the exact engine over simulated time, their
metrics and reports (``perpbox lab``).  The lab drives the engine through its commands and reads
its public read surface and events only."""
