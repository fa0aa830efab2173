"""Hypothesis settings shared by the property tests: the ``ci`` volume by default, ``dev`` (about a
tenth) with ``HYPOTHESIS_PROFILE=dev``; derandomized, no example database."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.filter_too_much]
COMMON: dict[str, Any] = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                              report_multiple_bugs=False, suppress_health_check=HEALTH)
PROFILE = "dev" if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "dev" else "ci"
