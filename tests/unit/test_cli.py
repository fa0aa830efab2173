"""The ``perpbox`` command: version, help with examples, and the seeded demo session."""

from __future__ import annotations

import re

from rich.console import Console
from typer.testing import CliRunner

from perpbox import __version__
from perpbox.cli import app
from perpbox.cli.demo import default_markets, run_demo
from perpbox.ledger.ledger import FEE_ACCOUNT


def test_version_prints_the_package_version() -> None:
    res = CliRunner().invoke(app, ["version"])
    assert res.exit_code == 0
    assert res.output.strip() == __version__ == "0.1.0"


def test_help_lists_every_command_with_examples() -> None:
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ("serve", "fund", "replay", "demo", "version"):
        assert re.search(rf"^\W*{command}\b", res.output, re.M), command
    assert "perpbox demo --seed 7 --steps 400" in res.output
    res = CliRunner().invoke(app, ["demo", "--help"])
    assert res.exit_code == 0 and "--seed" in res.output and "--steps" in res.output


def test_demo_markets_start_at_their_stated_prices() -> None:
    """BTC has 5 size decimals (prices in $0.1), ETH 4 (prices in $0.01)."""
    (btc, btc_px), (eth, eth_px) = default_markets()
    assert (btc.px_decimals, btc_px) == (1, 100_000_0)  # $100,000.0
    assert (eth.px_decimals, eth_px) == (2, 3_500_00)  # $3,500.00


def test_demo_session_is_seeded_conserves_usdc_and_replays() -> None:
    console = Console(width=200, record=True)
    ex = run_demo(seed=3, steps=60, console=console)
    out = console.export_text()
    assert "replay: same state" in out and "OK" in out
    # the marks took small steps from their start: nowhere near a 10x misprice
    for spec, start in default_markets():
        assert abs(ex.pricing.mark(spec.asset) - start) * 20 < start, spec.name
    deposits = (3 * 2_000_000 + 4 * 50_000 + 100_000 + 20_000) * 10**6  # makers, takers, whale, isolated trader
    assert ex.ledger.deposits == deposits and ex.ledger.withdrawals == 0
    assert ex.ledger.total_cash() == deposits
    assert ex.ledger.accounts[FEE_ACCOUNT].raw_usd > 0
    again = run_demo(seed=3, steps=60, console=Console(width=200, record=True))
    assert again.state_hash() == ex.state_hash()


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fund_without_a_server_says_so_in_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    res = CliRunner().invoke(app, ["fund", "0x14791697260E4c9A71f18484C9f997B308e59325", "10000", "--url", url])
    assert res.exit_code == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"fund failed: no server answered at {url} (")
    assert "perpbox serve" in lines[0] and "Traceback" not in res.output


def test_fund_against_something_that_is_not_perpbox() -> None:
    """A server that answers, but not with perpbox's JSON: its status and text, one line, exit 1."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html>\n<body>no such page</body>\n</html>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        res = CliRunner().invoke(app, ["fund", "0xabc", "5", "--url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [f"fund failed (404) at {url}/dev/fund: <html> <body>no such page</body> </html>"]


def test_fund_help_has_examples() -> None:
    res = CliRunner().invoke(app, ["fund", "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "perpbox fund 0x14791697260E4c9A71f18484C9f997B308e59325 10000" in res.output and "--url" in res.output
