"""A newcomer sees why tests skipped, and the README says what they need.

The suite's pytest options come from ``pyproject.toml``; a test file outside ``tests/`` is run with
them in a child pytest, and the reason of its skip must be in the default output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_default_output_shows_each_skip_reason(tmp_path):
    (tmp_path / "test_needs_things.py").write_text(
        "import pytest\n\n"
        "def test_needs_the_moon():\n    pytest.skip('needs the moon at /no/such/moon')\n\n"
        "@pytest.mark.skipif(True, reason='needs a comet')\ndef test_needs_a_comet():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PERPBOX_NO_SKIPS", "PYTEST_ADDOPTS")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                           "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path / "test_needs_things.py")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"SKIPPED \[1\] .*test_needs_things.py:\d+: needs the moon at /no/such/moon", proc.stdout)
    assert re.search(r"SKIPPED \[1\] .*test_needs_things.py:\d+: needs a comet", proc.stdout)


def _skip_reasons() -> set[str]:
    """The literal start of every skip reason in the suite (before any f-string field)."""
    found = set()
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name == Path(__file__).name:  # the skips above are examples
            continue
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"""(?:skipif\(.*?reason=|pytest\.skip\()f?["']([^"'{]+)""", text):
            found.add(m.group(1).strip())
    return found


def test_readme_lists_what_every_skipped_test_needs():
    section = README.split("### Running the tests: what skipped tests need", 1)[1].split("\n## ", 1)[0]
    reasons = _skip_reasons() - {"the IP budget is spent by the fuzz above"}  # ordering, not a prerequisite
    assert {"shared data missing", "the installed engine is the pure-Python one"} <= reasons
    for reason in reasons:
        key = re.split(r":| at\b", reason)[0].strip()
        assert key in section, f"README does not say what a test skipped with {reason!r} needs"
    for need in ("../shared/data", "apt-get install chromium", "PERPBOX_PURE=1", "PERPBOX_NO_SKIPS=1"):
        assert need in section


def test_readme_explains_shared_for_a_clone_made_elsewhere():
    """Every ``../shared/...`` the README names is under a folder the README explains, with a
    public source, so a clone without ../shared still knows what the path is and where to get it."""
    section = README.split("### Data beside the project: `../shared`", 1)[1].split("\n## ", 1)[0]
    assert "next to the clone" in section and "skip" in section
    named = set(re.findall(r"\.\./shared/(data/[\w-]+|reference)", README))
    assert {"data/hftbacktest", "data/hyperliquid-sdk-cassettes", "reference"} <= named
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)`[^|]*\| (.+) \|$", section, re.M)}
    for name in named:
        sources = [src for path, src in rows.items() if path.startswith(name)]
        assert sources and all("https://" in src for src in sources), f"../shared/{name}: no public source in README"
