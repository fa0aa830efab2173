"""The ``perpbox`` command: the typer app, its small commands (``version``, ``fund``) and the options of
the others.  Each command group's work lives in its own module of this package: ``serve`` (serve,
replay) and ``demo`` are imported only when their command runs, so ``perpbox --help`` stays fast;
``venues`` (scan, funding, watch, record) and ``report`` (load, report) declare their own commands."""

from __future__ import annotations

from pathlib import Path

import typer

from perpbox import __version__

app = typer.Typer(
    help="perpbox: a deterministic perpetual-futures exchange engine and its tools.\n\n"
    "Examples:\n\n  perpbox serve\n\n  perpbox fund 0xYourAddress 10000\n\n  perpbox replay ./perpbox-data\n\n"
    "  perpbox demo --seed 7 --steps 400\n\n  perpbox version",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print perpbox's version."""
    typer.echo(__version__)


@app.command("demo")
def demo_command(
    seed: int = typer.Option(1, help="Seed of the simulated session (same seed, same session)."),
    steps: int = typer.Option(300, help="Number of simulated order-flow steps."),
) -> None:
    """Run a short seeded exchange session and print the book, fills, positions and margin.

    Example: perpbox demo --seed 7 --steps 400
    """
    from perpbox.cli.demo import run_demo

    run_demo(seed=seed, steps=steps)


@app.command("serve", context_settings={"allow_extra_args": True})
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="TCP port."),
    data_dir: Path = typer.Option(Path("perpbox-data"), "--data-dir", help="Where the log and snapshots live."),
    config: Path | None = typer.Option(None, help="Markets TOML (default: the shipped BTC/ETH/SOL/HYPE + xyz dex)."),
    feed: str = typer.Option("synthetic", help="Oracle feed: 'synthetic' (seeded), 'replay FILE' (recorded prices: "
                             "CSV/Parquet with time, coin, px, or a perpbox dataset directory) or 'none'."),
    agents: bool = typer.Option(True, "--agents/--no-agents", help="Simulated market makers and takers."),
    seed: int = typer.Option(1, help="Seed of the synthetic feed, the agents and the built-in deployer key."),
    fsync: bool = typer.Option(True, "--fsync/--no-fsync", help="fsync every group commit (durable on power loss)."),
    rate_limits: bool = typer.Option(True, "--rate-limits/--no-rate-limits",
                                     help="Hyperliquid's IP limits (429) and address-based request limits."),
    request_buffer: int = typer.Option(10_000, help="Address limit: requests allowed before 1 per USDC traded."),
    network: str = typer.Option("both", help="Phantom-agent source accepted: both, mainnet or testnet."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
    snapshot_every: int = typer.Option(50_000, min=1, metavar="N",
                                       help="Snapshot the state every N commands (and on a clean stop)."),
    tick_interval: float = typer.Option(1.0, min=0.0, metavar="SECONDS",
                                        help="Seconds between engine ticks (funding, oracle, triggers, liquidations);"
                                             " 0 stops the clock, so only requests change the state (tests)."),
    dev_faults: bool = typer.Option(False, "--dev-faults", help="POST /dev/fault: faults on demand (dropped "
                                    "WebSockets, freezes, stale or zero positions, delayed fills, rejects, halts) "
                                    "for testing bots."),
) -> None:
    """Run a Hyperliquid-compatible exchange on localhost (dev mode: faucet and HIP-3 deploys open).

    Examples:

      perpbox serve

      perpbox serve --port 9000 --data-dir /tmp/px --no-agents --seed 7

      perpbox serve --feed replay prices.csv   (columns: ts_ms, coin, px)

    Point the official SDK at it: Exchange(wallet, "http://127.0.0.1:8080").
    """
    from perpbox.cli.serve import run_server

    feed_file = None
    extra = list(ctx.args)
    if feed == "replay" and extra:
        feed_file = Path(extra.pop(0))
    elif feed.startswith("replay:"):
        feed, feed_file = "replay", Path(feed.removeprefix("replay:"))
    if extra or feed not in ("synthetic", "replay", "none") or (feed == "replay" and feed_file is None):
        unexpected = f" (unexpected: {' '.join(extra)})" if extra else ""
        raise typer.BadParameter(f"--feed: 'synthetic', 'none' or 'replay FILE'{unexpected}")
    run_server(host=host, port=port, data_dir=data_dir, config=config, feed=feed, feed_file=feed_file, agents=agents,
               seed=seed, fsync=fsync, rate_limits=rate_limits, request_buffer=request_buffer, network=network,
               log_level=log_level, snapshot_every=snapshot_every, tick_interval=tick_interval, dev_faults=dev_faults)


@app.command()
def fund(
    address: str = typer.Argument(..., help="The account to credit (0x…)."),
    amount: str = typer.Argument(..., help="USDC to deposit, e.g. 10000."),
    url: str = typer.Option("http://127.0.0.1:8080", help="The running perpbox serve."),
) -> None:
    """Dev faucet: deposit USDC into ADDRESS on a running `perpbox serve`.

    Examples:

      perpbox fund 0x14791697260E4c9A71f18484C9f997B308e59325 10000

      perpbox fund 0x14791697260E4c9A71f18484C9f997B308e59325 500 --url http://127.0.0.1:9000

    With no server at URL it says so in one line and exits 1.
    """
    import httpx

    endpoint = url.rstrip("/") + "/dev/fund"
    try:
        resp = httpx.post(endpoint, json={"user": address, "usd": amount}, timeout=10)
    except httpx.TransportError as exc:  # refused, unresolvable host, timeout, dropped connection
        typer.echo(f"fund failed: no server answered at {url} ({_transport_reason(exc)}); "
                   "start one with `perpbox serve` or pass --url", err=True)
        raise typer.Exit(1) from None
    if resp.status_code != 200 or _json_status(resp) != "ok":
        text = resp.text.strip().replace("\n", " ")
        typer.echo(f"fund failed ({resp.status_code}) at {endpoint}: {text[:300] or '(empty response)'}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deposited {amount} USDC to {address.lower()}")


def _transport_reason(exc: Exception) -> str:
    """One line for a connection failure: the innermost OS reason when there is one."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1]


def _json_status(resp) -> object:
    """``resp.json()["status"]``, or None when the body is not a JSON object (not a perpbox server)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("status") if isinstance(body, dict) else None


@app.command("replay")
def replay_command(
    data_dir: Path = typer.Argument(Path("perpbox-data"), help="A perpbox serve data directory."),
    full: bool = typer.Option(False, help="Ignore snapshots: re-apply the whole log."),
    upto: int | None = typer.Option(None, help="Stop after this sequence number (the state as it was then)."),
) -> None:
    """Rebuild the exchange state from a data directory's log and print its state hash.

    Example: perpbox replay ./perpbox-data --full
    """
    from perpbox.cli.serve import replay_dir

    replay_dir(data_dir, full=full, upto=upto)


# The venue data kit's commands (scan, funding, watch, record; load, report) register themselves, so each
# group can grow in its own module.  The command functions above are named ``*_command`` because a
# submodule, once imported, is bound as an attribute of this package and would shadow a function of
# the same name (``serve``, ``demo``).
from perpbox.cli import bots, carry, deployer, lab, monitor, positions, report, venues, wear  # noqa: E402
from perpbox.cli.console import reflow_help  # noqa: E402

venues.register(app)
report.register(app)
deployer.register(app)
monitor.register(app)
bots.register(app)
carry.register(app)
lab.register(app)
positions.register(app)
wear.register(app)
reflow_help(app)


def main() -> None:
    """The console script's entry point."""
    app()
