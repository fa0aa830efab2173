"""The HIP-3 deployer's risk monitor (``perpbox monitor``): price, book and position channels read
from the venue's public API, rules with tiered responses, alerts, metrics and a dashboard."""
