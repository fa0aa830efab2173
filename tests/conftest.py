"""Suite-wide: with ``PERPBOX_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test fails instead.

Tests skip when something beside the project is missing -- ``../shared/data``, Debian's chromium,
the compiled engine -- so that a bare clone still runs.  CI has all of them, so there a skip would
only hide a test that did not run."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

NO_SKIPS = os.environ.get("PERPBOX_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under PERPBOX_NO_SKIPS=1: {reason}"
