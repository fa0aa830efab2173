"""``perpbox monitor``: the HIP-3 deployer's risk monitor."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

MONITOR_HELP = """Watch a HIP-3 dex's price, book and position channels and answer its rules with
the deployer's levers: setOpenInterestCaps, setMarginTableIds, haltTrading.

Modes: auto signs and sends each action (needs --key-file); alert sends nothing and alerts with the
action it would send; dry-run only records. Every decision goes to --audit-log (JSON lines).
The default rules are the HIP-3 builder guidance (`perpbox monitor --print-rules` shows them).

Examples:

  perpbox monitor --url http://127.0.0.1:8080 --dex xyz --once --json

  perpbox monitor --url https://api.hyperliquid.xyz --dex abc --mode alert --webhook https://hooks.example/x

  perpbox monitor --url http://127.0.0.1:8080 --dex xyz --mode auto --key-file deployer.key --attest-dir attest/
  --metrics-port 9102 --telegram-token T --telegram-chat 12345
"""


def monitor_command(
    url: Annotated[str, typer.Option(help="The venue (mainnet, testnet or a perpbox serve).")] = "",
    dex: Annotated[str, typer.Option(help="The HIP-3 dex to watch.")] = "",
    rules: Annotated[Path | None, typer.Option(help="Rules file (TOML; default: the guidance's).")] = None,
    mode: Annotated[str, typer.Option(help="auto, alert or dry-run.")] = "alert",
    key_file: Annotated[Path | None, typer.Option("--key-file", help="The deployer's hex private key (auto).")]
    = None,
    attest_dir: Annotated[Path | None, typer.Option("--attest-dir", help="The relay's attestation log: exact "
                                                    "feed latency and external price.")] = None,
    audit_log: Annotated[Path | None, typer.Option("--audit-log", help="Append every decision here (JSON lines).")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics on this port.")] = None,
    dashboard_port: Annotated[int | None, typer.Option(help="The live dashboard on this port.")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="POST each alert as JSON here (repeatable).")] = None,
    telegram_token: Annotated[str | None, typer.Option(help="Telegram bot token.")] = None,
    telegram_chat: Annotated[str | None, typer.Option(help="Telegram chat id.")] = None,
    telegram_api: Annotated[str | None, typer.Option(help="Bot API base URL (a self-hosted server).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Read every channel once, print, exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    print_rules: Annotated[bool, typer.Option("--print-rules", help="Print the default rules file and exit.")]
    = False,
) -> None:
    from perpbox.monitor.rules import RulesError, default_rules_text, load_rules

    if print_rules:
        sys.stdout.write(default_rules_text())
        return
    if not url or not dex:
        raise typer.BadParameter("--url and --dex are needed")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would show a bot token
    try:
        parsed = load_rules(rules)
    except (RulesError, OSError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    if mode == "auto" and key_file is None:
        raise typer.BadParameter("--mode auto signs its actions: give --key-file")
    if (telegram_token is None) != (telegram_chat is None):
        raise typer.BadParameter("--telegram-token and --telegram-chat go together")
    code = asyncio.run(_run(url, dex, parsed, mode, key_file, attest_dir, audit_log, metrics_port, dashboard_port,
                            webhook or [], telegram_token, telegram_chat, telegram_api, once, as_json))
    raise typer.Exit(code)


async def _run(url: str, dex: str, rules: object, mode: str, key_file: Path | None, attest_dir: Path | None,
               audit_log: Path | None, metrics_port: int | None, dashboard_port: int | None, webhooks: list[str],
               telegram_token: str | None, telegram_chat: str | None, telegram_api: str | None, once: bool,
               as_json: bool) -> int:
    from perpbox.api.signing import read_key_file
    from perpbox.deployer.relay import HttpVenue
    from perpbox.deployer.signer import MAINNET_URL, ActionSender
    from perpbox.monitor.alerts import Alerter, Sink, TelegramSink, WebhookSink
    from perpbox.monitor.rules import Rules
    from perpbox.monitor.service import Monitor

    assert isinstance(rules, Rules)
    venue = HttpVenue(url)
    sender = None
    if key_file is not None:
        sender = ActionSender(venue, read_key_file(key_file.read_text()), is_mainnet=url.rstrip("/") == MAINNET_URL,
                              dry_run=mode != "auto")
    sinks: list[Sink] = [WebhookSink(u) for u in webhooks]
    if telegram_token is not None and telegram_chat is not None:
        sinks.append(TelegramSink(telegram_token, telegram_chat, base_url=telegram_api))
    alerter = Alerter(sinks) if sinks else None
    monitor = Monitor(venue, dex, rules, mode=mode, sender=sender, alerter=alerter, audit_path=audit_log,
                      attest_dir=attest_dir)
    try:
        if once:
            await monitor.step()
            state = monitor.state()
            if as_json:
                sys.stdout.write(json.dumps(state, indent=2) + "\n")
            else:
                for m in state["markets"]:
                    values = ", ".join(f"{k}={v}" for k, v in m["values"].items() if v is not None)
                    typer.echo(f"{m['coin']}: level {m['level']}  {values}")
            return 0
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, registry=monitor.metrics.registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = None
        if dashboard_port is not None:
            from perpbox.monitor.dashboard import serve_dashboard

            server = await serve_dashboard(monitor, dashboard_port)
        try:
            await monitor.run(stop)
        finally:
            if server is not None:
                server.should_exit = True
        return 0
    finally:
        if alerter is not None:
            await alerter.aclose()
        await venue.aclose()


def register(app: typer.Typer) -> None:
    app.command("monitor", help=MONITOR_HELP)(monitor_command)
