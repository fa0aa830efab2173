"""The ``serve`` and ``replay`` commands' work: start the service with its banner, and rebuild a data
directory's state (kept out of ``perpbox.cli`` so ``perpbox --help`` is fast)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from perpbox.config import load_config

BANNER = """[bold]perpbox[/] — a Hyperliquid-compatible perp exchange on localhost

  HTTP   [cyan]http://{host}:{port}[/]   (POST /info, POST /exchange)
  WS     [cyan]ws://{host}:{port}/ws[/]
  Page   [cyan]http://{host}:{port}/[/]
  Data   {data_dir}  ({n} commands in the log)
  Start  {recovery}
  Markets {markets}

  [dim]from eth_account import Account; from hyperliquid.exchange import Exchange
  w = Account.create(); # then: perpbox fund <w.address> 10000
  Exchange(w, "http://{host}:{port}").order("BTC", True, 0.01, 100000, {{"limit": {{"tif": "Gtc"}}}})[/]
"""


def run_server(*, host: str, port: int, data_dir: Path, config: Path | None, feed: str, feed_file: Path | None,
               agents: bool, seed: int, fsync: bool, rate_limits: bool, request_buffer: int, network: str,
               log_level: str, snapshot_every: int | None = None, tick_interval: float = 1.0,
               dev_faults: bool = False) -> None:
    import uvicorn

    from perpbox.api.server import ServeOptions, Service
    from perpbox.store.sequencer import SNAPSHOT_EVERY

    _log_venue_to_stderr()
    console = Console()
    opts = ServeOptions(data_dir=data_dir, config=load_config(config), seed=seed, agents=agents, fsync=fsync,
                        rate_limits=rate_limits, request_buffer=request_buffer, network=network, feed=feed,
                        feed_file=feed_file, snapshot_every=snapshot_every or SNAPSHOT_EVERY,
                        tick_s=tick_interval, dev_faults=dev_faults)
    service = Service(opts)
    v = service.venue
    markets = ", ".join(m.spec.coin for m in opts.config.all_markets())
    recovery = escape(str(v.report))
    if v.report.status == "unusable":
        recovery = f"[yellow]{recovery}[/]"
    console.print(BANNER.format(host=host, port=port, data_dir=data_dir.resolve(), n=v.log.last_seq,
                                recovery=recovery, markets=markets), highlight=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(service.app(), host=host, port=port, log_level=log_level,
                                           ws="websockets-sansio", lifespan="on"))
    _run(_serve(server))


def _log_venue_to_stderr() -> None:
    """The venue's own log (recovery, snapshots) on stderr: ``perpbox.venue: …`` lines."""
    import logging

    venue_log = logging.getLogger("perpbox.venue")
    if not venue_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        venue_log.addHandler(handler)
        venue_log.setLevel(logging.INFO)
        venue_log.propagate = False


def _run(main: Any) -> None:
    """uvloop where it exists (uvicorn picks it only when it owns the loop; here we do)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


async def _serve(server: object) -> None:
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


def replay_dir(data_dir: Path, full: bool = False, upto: int | None = None) -> None:
    from perpbox.store.log import CommandLog
    from perpbox.store.recovery import recover

    console = Console()
    if not (data_dir / "perpbox.db").exists():
        console.print(f"[red]no perpbox log in {data_dir}[/]")
        raise SystemExit(1)
    log = CommandLog(data_dir, fsync=False)
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("replay", total=log.count())
        state, report = recover(log, lambda done, total: progress.update(task, completed=done, total=total), upto,
                                use_snapshot=not full)
    console.print(str(report), markup=False, highlight=False, soft_wrap=True)
    console.print(f"commands={state.seq} replayed={report.replayed} state_hash={state.ex.state_hash()}",
                  highlight=False, soft_wrap=True)
