"""The project's lint and type-check settings (pyproject.toml) hold on the code as committed:
ruff over src, tests and bench; mypy, strict, over the engine packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    res = _run("ruff", "check", "--no-cache", "src", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_on_the_engine_packages(tmp_path: Path) -> None:
    res = _run("mypy", "--cache-dir", str(tmp_path))  # files and strictness: [tool.mypy]
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Success: no issues found" in res.stdout
