"""The server a network benchmark runs against: ``--url`` if given, else a fresh ``perpbox serve``
(no agents, no feed, rate limits off, fsync on) in a temporary directory, stopped afterwards."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from compat.conftest import Server

Fund = Callable[[str], None]


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A network benchmark's command line: its docstring as the help, and ``--url`` for ``server``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server with the dev faucet (default: start one)")
    return ap


@contextmanager
def server(url: str | None) -> Iterator[tuple[str, Fund]]:
    """(base URL, a function crediting an address with $1M through the dev faucet)."""
    if url:
        def fund(addr: str) -> None:
            httpx.post(url + "/dev/fund", json={"user": addr, "usd": "1000000"}).raise_for_status()
        yield url, fund
        return
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp) / "data", "--no-agents", "--feed", "none").start()
        try:
            yield srv.url, lambda addr: srv.fund(addr, "1000000")
        finally:
            srv.stop()


