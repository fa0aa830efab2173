"""``perpbox positions``: the trader's position monitor across every account, with alerts and safe
Telegram actions (``perpbox.bots.positions``, ``perpbox.bots.telegram_actions``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

POSITIONS_HELP = """Watch every account of an accounts file: net exposure per underlying across venues,
imbalance, margin ratio, liquidation distance (in % and in 1 h volatilities), funding per hour and
the age of every data stream; alert on imbalance, position changes no fill explains, margin,
liquidation distance, venue errors and funding spikes (webhook, Telegram); answer Telegram
commands /status, /positions, /reduce COIN PCT [ACCOUNT] and /flatten COIN [ACCOUNT] — each
destructive command a preview with Confirm / Abort buttons, only in --allow-chat chats.

Coins group by underlying: xyz:SILVER is SILVER; BTC/USDT:USDT is BTC; --alias maps the rest.

Exit codes: with --once, 0 when no rule fires and 1 when one does (holds taken as met); 2 for an
unusable accounts file or option; otherwise 0 after Ctrl-C.

Examples:

  perpbox positions --accounts accounts.toml --once --json

  perpbox positions --accounts accounts.toml --interval 5 --metrics-port 9103 --webhook https://hooks.example/x

  PERPBOX_TELEGRAM_TOKEN=… perpbox positions --accounts accounts.toml --telegram-chat 12345 --allow-chat 12345
  --audit-log positions-audit.jsonl
"""


def _decimal(text: str, name: str, positive: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{name}: {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or (positive and value == 0):
        raise typer.BadParameter(f"{name}: must be {'positive' if positive else 'zero or more'}")
    return value


class _RedactFilter(logging.Filter):
    """Every log record with the secrets masked (python-telegram-bot and httpx can log the token)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        from perpbox.monitor.alerts import redact

        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text, self.secrets)
        return True


def positions_command(
    accounts: Annotated[Path, typer.Option(help="The accounts file (TOML), every account watched.")],
    interval: Annotated[float, typer.Option(help="Seconds between rounds of reads.", min=0.05)] = 5.0,
    webhook: Annotated[list[str] | None, typer.Option(help="POST each alert as JSON here (repeatable).")] = None,
    telegram_token: Annotated[str | None, typer.Option(envvar="PERPBOX_TELEGRAM_TOKEN",
                                                       help="Telegram bot token (or PERPBOX_TELEGRAM_TOKEN).")]
    = None,
    telegram_chat: Annotated[list[str] | None, typer.Option(help="Send alerts to this chat (repeatable).")] = None,
    telegram_api: Annotated[str | None, typer.Option(help="Bot API base URL, e.g. http://host:8081/bot.")] = None,
    allow_chat: Annotated[list[int] | None, typer.Option(help="Chat ids whose commands are answered (repeatable); "
                                                         "none: the bot takes no commands.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics on this port.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, print, exit (1 if a rule fires).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print the snapshot as JSON.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Confirm shows the orders and sends nothing.")] = False,
    audit_log: Annotated[Path | None, typer.Option(help="Append every command, decision and alert (JSON lines).")]
    = None,
    alias: Annotated[list[str] | None, typer.Option(help="COIN=UNDERLYING grouping alias (repeatable).")] = None,
    band_bps: Annotated[int, typer.Option(help="A reduce's IOC limit: this far through the touch.", min=1,
                                          max=2000)] = 50,
    preview_ttl_s: Annotated[float, typer.Option(help="A preview's Confirm works this long.", min=0.1)] = 60.0,
    rate_limit_s: Annotated[float, typer.Option(help="One confirmed action per this many seconds per chat.",
                                                min=0)] = 10.0,
    imbalance_max: Annotated[str, typer.Option(help="Rule imbalance: |net|/gross above this…")] = "0.2",
    imbalance_min_net_usd: Annotated[str, typer.Option(help="…with |net| at least this many USD…")] = "50",
    imbalance_hold_s: Annotated[float, typer.Option(help="…for this long.", min=0)] = 30.0,
    unexplained_min: Annotated[str, typer.Option(help="Rule unexplained_position: |Δ| above this (size)…")] = "0",
    unexplained_hold_s: Annotated[float, typer.Option(help="…for this long.", min=0)] = 5.0,
    margin_ratio_max: Annotated[str, typer.Option(help="Rule margin_ratio: maintenance/equity above this…")]
    = "0.5",
    margin_hold_s: Annotated[float, typer.Option(help="…for this long.", min=0)] = 10.0,
    liq_distance_min_pct: Annotated[str, typer.Option(help="Rule liq_distance: under this % of the mark…")] = "5",
    liq_distance_min_sigma: Annotated[float, typer.Option(help="…or under this many 1 h volatilities…", min=0)]
    = 3.0,
    liq_hold_s: Annotated[float, typer.Option(help="…for this long.", min=0)] = 10.0,
    venue_error_count: Annotated[int, typer.Option(help="Rule venue_error: this many failed reads in a row.",
                                                   min=1)] = 3,
    funding_max_hourly: Annotated[str, typer.Option(help="Rule funding_spike: |rate per hour| above this…")]
    = "0.0005",
    funding_hold_s: Annotated[float, typer.Option(help="…for this long.", min=0)] = 60.0,
    vol_window: Annotated[int, typer.Option(help="Volatility: the last this many mid samples.", min=3)] = 60,
) -> None:
    from perpbox.bots.positions import Thresholds, parse_aliases

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would show the bot token
    if telegram_token:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RedactFilter([telegram_token]))
    if as_json and not once:
        raise typer.BadParameter("--json goes with --once")
    if (telegram_chat or allow_chat) and not telegram_token:
        raise typer.BadParameter("--telegram-chat and --allow-chat need --telegram-token")
    try:
        aliases = parse_aliases(alias or [])
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    thresholds = Thresholds(
        imbalance_max=_decimal(imbalance_max, "--imbalance-max"),
        imbalance_min_net_usd=_decimal(imbalance_min_net_usd, "--imbalance-min-net-usd"),
        imbalance_hold_s=imbalance_hold_s, unexplained_min=_decimal(unexplained_min, "--unexplained-min"),
        unexplained_hold_s=unexplained_hold_s, margin_ratio_max=_decimal(margin_ratio_max, "--margin-ratio-max"),
        margin_hold_s=margin_hold_s, liq_distance_min_pct=_decimal(liq_distance_min_pct, "--liq-distance-min-pct"),
        liq_distance_min_sigma=liq_distance_min_sigma, liq_hold_s=liq_hold_s, venue_error_count=venue_error_count,
        funding_max_hourly=_decimal(funding_max_hourly, "--funding-max-hourly"), funding_hold_s=funding_hold_s,
        vol_window=vol_window, read_timeout_s=max(10.0, interval))
    code = asyncio.run(_run(accounts, thresholds, aliases, interval=interval, webhooks=webhook or [],
                            token=telegram_token, chats=telegram_chat or [], api=telegram_api,
                            allow=allow_chat or [], metrics_port=metrics_port, once=once, as_json=as_json,
                            dry_run=dry_run, audit_log=audit_log, band_bps=band_bps, ttl_s=preview_ttl_s,
                            rate_limit_s=rate_limit_s))
    raise typer.Exit(code)


def _open(accounts: Path) -> dict[str, tuple[str, Any]] | str:
    from perpbox.bots.accounts import AccountsError, load_accounts, open_venue

    try:
        specs = load_accounts(accounts)
    except AccountsError as e:
        return str(e)
    if not specs:
        return f"{accounts}: no account"
    out: dict[str, tuple[str, Any]] = {}
    for name, spec in specs.items():
        label = f"{spec.kind}:{spec.target}" + (f":{spec.dex}" if spec.dex else "")
        try:
            out[name] = (label, open_venue(spec))
        except Exception as e:  # one account that cannot open is that account's venue error
            from perpbox.monitor.alerts import redact

            out[name] = (label, redact(f"{type(e).__name__}: {e}") or type(e).__name__)
    return out


async def _run(accounts: Path, thresholds: Any, aliases: dict[str, str], *, interval: float, webhooks: list[str],
               token: str | None, chats: list[str], api: str | None, allow: list[int], metrics_port: int | None,
               once: bool, as_json: bool, dry_run: bool, audit_log: Path | None, band_bps: int, ttl_s: float,
               rate_limit_s: float) -> int:
    from perpbox.bots.positions import AuditLog, PositionsMonitor
    from perpbox.bots.telegram_actions import ActionDesk, ActionService, TelegramBot, executed_ids
    from perpbox.monitor.alerts import Alerter, Sink, TelegramSink, WebhookSink

    opened = _open(accounts)
    if isinstance(opened, str):
        typer.echo(opened, err=True)
        return 2
    audit = AuditLog(audit_log, [token] if token else [])
    sinks: list[Sink] = [WebhookSink(u) for u in webhooks]
    if token:
        sinks += [TelegramSink(token, chat, base_url=api) for chat in chats]
    alerter = Alerter(sinks) if sinks else None
    monitor = PositionsMonitor(opened, thresholds, aliases=aliases, alerter=alerter, audit=audit, one_shot=once)
    bot = None
    try:
        if once:
            snap = await monitor.step()
            if as_json:
                sys.stdout.write(json.dumps(snap.to_json(), indent=2) + "\n")
            else:
                from perpbox.cli.console import table_console

                table_console().print(render(snap))
            return 1 if snap.alerts else 0
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, registry=monitor.metrics.registry)
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
        if token and allow:
            desk = ActionDesk(allow, ttl_s=ttl_s, rate_limit_s=rate_limit_s, band_bps=band_bps, dry_run=dry_run,
                              executed=executed_ids(audit.records()))
            bot = TelegramBot(token, ActionService(monitor, desk, audit=audit), base_url=api)
            try:
                await bot.start()
            except RuntimeError as e:  # already redacted
                bot = None
                typer.echo(f"telegram commands could not start: {e}", err=True)
                return 2
            logging.getLogger("perpbox.positions").info("telegram commands on for chats %s%s",
                                                        ", ".join(map(str, allow)), " (dry-run)" if dry_run else "")
        elif token:
            logging.getLogger("perpbox.positions").info("telegram commands off: no --allow-chat")
        await _live(monitor, interval, stop)
        return 0
    finally:
        if bot is not None:
            await bot.stop()
        if alerter is not None:
            await alerter.aclose()
        await monitor.aclose()


async def _live(monitor: Any, interval: float, stop: asyncio.Event) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            snap = await monitor.step()
            if console.is_terminal:
                live.update(render(snap), refresh=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def render(snap: Any) -> Any:
    """The rich view of a snapshot: exposures, accounts, alerts."""
    from rich.console import Group
    from rich.table import Table

    from perpbox.bots.telegram_actions import fmt_fixed

    pos = Table(title="positions")
    for col in ("underlying", "account", "coin", "size", "mark", "USD", "imbalance", "liq dist %", "liq σ1h",
                "funding $/h"):
        pos.add_column(col, justify="right")
    for e in snap.exposures:
        pos.add_row(e.underlying, "net", "", str(e.net_size), "", fmt_fixed(e.net_usd), fmt_fixed(e.imbalance, 4),
                    "", "", fmt_fixed(e.funding_usd_per_h, 4), style="bold")
        for g in e.legs:
            sigma = "" if g.liq_distance_sigma is None else f"{g.liq_distance_sigma:.2f}"
            pos.add_row("", g.account + (" (stale)" if g.stale else ""), g.coin, str(g.size), str(g.mark),
                        fmt_fixed(g.usd), "", fmt_fixed(g.liq_distance_pct), sigma, fmt_fixed(g.funding_usd_per_h, 4))
    accts = Table(title="accounts")
    for col in ("account", "equity", "margin ratio", "streams (age s / failures)", "error"):
        accts.add_column(col)
    for a in snap.accounts:
        streams = " ".join(f"{k}={'-' if s['age_s'] is None else format(s['age_s'], '.1f')}/{s['failures']}"
                           for k, s in a["streams"].items())
        err = a["open_error"] or "; ".join(s["error"] for s in a["streams"].values() if s["error"])
        ratio = "" if a["margin_ratio"] is None else f"{Decimal(a['margin_ratio']):.6f}"
        accts.add_row(a["account"], a["equity"] or "", ratio, streams, err[:80])
    parts: list[Any] = [pos, accts]
    if snap.alerts:
        al = Table(title="alerts firing", style="red")
        for col in ("rule", "market", "scope", "measured"):
            al.add_column(col)
        for x in snap.alerts:
            al.add_row(x["rule"], x["market"], x["scope"], ", ".join(f"{k}={v}" for k, v in x["measured"].items()
                                                                     if v))
        parts.append(al)
    return Group(*parts)


def register(app: typer.Typer) -> None:
    app.command("positions", help=POSITIONS_HELP)(positions_command)
