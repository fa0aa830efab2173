"""The ``sim`` fixture: a fresh exchange harness per scenario (see scenario_kit.py)."""

from __future__ import annotations

import pytest
from scenario_kit import Sim


@pytest.fixture
def sim() -> Sim:
    return Sim()
