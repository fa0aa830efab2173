"""``perpbox deployer run`` (the oracle relay) and ``perpbox attest …`` (its attestation log:
prove, record, verify, verify-proof, checkpoint)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

RUN_HELP = """Run a HIP-3 dex's oracle relay: every interval, price each asset from its oracle
definition and send one signed `perpDeploy setOracle` to the venue.

The relay clamps each price to 1% from its last accepted one and to 10x the start-of-day price
itself (and logs when a clamp binds); it never sends more often than every 2.5 s. With
--attest-dir every attempt, failed ones too, is a record in an append-only Merkle log, checkpointed
(signed) every hour and at exit; see `perpbox attest --help`.

Examples:

  perpbox deployer run --url http://127.0.0.1:8080 --dex xyz --key-file deployer.key --oracle oracle.toml

  perpbox deployer run --url https://api.hyperliquid-testnet.xyz --dex abc --key-file k --oracle o.toml
  --attest-dir attest/ --metrics-port 9101

  perpbox deployer run --url https://api.hyperliquid.xyz --dex abc --key-file k --oracle o.toml --dry-run --count 5
"""

ATTEST_HELP = """The relay's attestation log: every oracle update attempt, provable.

Examples:

  perpbox attest verify attest/ --public-key attest/attest.vkey

  perpbox attest prove attest/ --index 41 > update-41.tlog-proof

  perpbox attest record attest/ --index 41 > update-41.json

  perpbox attest verify-proof update-41.tlog-proof --public-key attest.vkey --record update-41.json

  perpbox attest checkpoint attest/ --dex xyz --attest-key attest.key
"""

attest_app = typer.Typer(help=ATTEST_HELP, no_args_is_help=True, add_completion=False)
deployer_app = typer.Typer(help="The HIP-3 deployer kit: the oracle relay.\n\nExample: perpbox deployer run --help",
                           no_args_is_help=True, add_completion=False)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _read_vkey(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise _fail(f"{path}: {e.strerror}") from None


@deployer_app.command("run", help=RUN_HELP)
def run_command(
    url: Annotated[str, typer.Option(help="The venue: https://api.hyperliquid.xyz, the testnet, or a perpbox serve.")],
    dex: Annotated[str, typer.Option(help="The dex the definition's assets are on.")],
    key_file: Annotated[Path, typer.Option("--key-file", help="File holding the deployer's hex private key (0x…).")],
    oracle: Annotated[Path, typer.Option(help="The oracle definition (TOML).")],
    attest_dir: Annotated[Path | None, typer.Option("--attest-dir", help="Write the attestation log here.")] = None,
    attest_key: Annotated[Path | None, typer.Option(
        "--attest-key", help="The log's Ed25519 signing key (created if missing; default: <dex>-attest.key beside "
        "ATTEST_DIR, outside what you publish).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute, sign and record, but send nothing.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many updates.", min=1)] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between checkpoints.", min=1)] = 3600,
) -> None:
    from perpbox.api.signing import read_key_file
    from perpbox.deployer.attestlog import AttestError, AttestLog
    from perpbox.deployer.definition import DefinitionError, load_definition
    from perpbox.deployer.relay import HttpVenue, Relay, RelayMetrics
    from perpbox.deployer.signer import MAINNET_URL

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        definition = load_definition(oracle)
        key = read_key_file(key_file.read_text())
    except (DefinitionError, ValueError, OSError) as e:
        raise _fail(str(e)) from None
    if definition.dex != dex:
        raise _fail(f"--dex {dex}: the definition's assets are on dex {definition.dex!r}")
    log = None
    if attest_dir is not None:
        try:
            log = AttestLog.open(attest_dir, dex, attest_key or attest_dir.parent / f"{dex}-attest.key")
        except AttestError as e:
            raise _fail(str(e)) from None
        if log.torn:
            typer.echo(f"attest: a record cut short by a crash was moved to {attest_dir / 'records.torn'}", err=True)
    metrics = RelayMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)

    async def main() -> int:
        venue = HttpVenue(url)
        relay = Relay(definition, venue, key, attest=log, dry_run=dry_run, is_mainnet=url.rstrip("/") == MAINNET_URL,
                      checkpoint_every_ms=round(checkpoint_every * 1000), metrics=metrics)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, relay.checkpoint)  # a checkpoint on demand
        try:
            await relay.start()
            return await relay.run(stop, count)
        finally:
            await relay.aclose()
            await venue.aclose()

    try:
        done = asyncio.run(main())
    except (ValueError, OSError) as e:
        raise _fail(f"relay: {e}") from None
    finally:
        if log is not None:
            log.close()
    typer.echo(f"relay stopped after {done} updates" + (f"; log {attest_dir} has {log.size} records" if log else ""))


@attest_app.command("verify")
def verify_command(
    directory: Annotated[Path, typer.Argument(help="The attestation directory.")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="Verifier key to trust (default: the directory's own attest.vkey).")] = None,
) -> None:
    """Check every record against the tree, every checkpoint signature and the consistency chain.

    Exits 1 and lists each problem when anything was changed, removed or forked.

    Example: perpbox attest verify attest/ --public-key attest.vkey
    """
    from perpbox.deployer.attestlog import verify_log

    report = verify_log(directory, _read_vkey(public_key) if public_key else None)
    for p in report.problems:
        typer.echo(f"FAIL {p}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    trust = "" if public_key else " (against the directory's own key: pass --public-key to pin it)"
    typer.echo(f"ok: {report.records} records, {report.checkpoints} checkpoints, consistent{trust}")


@attest_app.command("prove")
def prove_command(
    directory: Annotated[Path, typer.Argument(help="The attestation directory.")],
    index: Annotated[int, typer.Option(help="The record's index (leaf number).", min=0)],
    with_record: Annotated[bool, typer.Option("--with-record", help="Put the record in the bundle's extra line.")]
    = False,
) -> None:
    """Print a c2sp.org/tlog-proof@v1 bundle for one record (index, inclusion hashes, checkpoint).

    Example: perpbox attest prove attest/ --index 41 > update-41.tlog-proof
    """
    from perpbox.deployer.attestlog import AttestError, prove

    try:
        sys.stdout.write(prove(directory, index, with_record=with_record))
    except AttestError as e:
        raise _fail(str(e)) from None


@attest_app.command("record")
def record_command(
    directory: Annotated[Path, typer.Argument(help="The attestation directory.")],
    index: Annotated[int, typer.Option(help="The record's index.", min=0)],
) -> None:
    """Print one record's canonical bytes (what its leaf hash is computed over).

    Example: perpbox attest record attest/ --index 41 > update-41.json
    """
    from perpbox.deployer.attestlog import AttestError, record_bytes

    try:
        sys.stdout.buffer.write(record_bytes(directory, index))
    except AttestError as e:
        raise _fail(str(e)) from None


@attest_app.command("verify-proof")
def verify_proof_command(
    bundle: Annotated[Path, typer.Argument(help="A .tlog-proof bundle from `perpbox attest prove`.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The log's verifier key (attest.vkey).")],
    record: Annotated[Path | None, typer.Option(help="The record's bytes (`perpbox attest record`).")] = None,
) -> None:
    """Check one bundle offline: the checkpoint signature and the record's inclusion.

    The record comes from --record or from the bundle itself (`prove --with-record`); without one
    only the signature can be checked, and the command says so and exits 1.

    Example: perpbox attest verify-proof update-41.tlog-proof --public-key attest.vkey --record update-41.json
    """
    from perpbox.deployer.attestlog import AttestError, verify_bundle

    try:
        check = verify_bundle(bundle.read_text(), _read_vkey(public_key),
                              record.read_bytes() if record is not None else None)
    except (AttestError, OSError, UnicodeDecodeError) as e:
        raise _fail(f"FAIL {e}") from None
    if check.record is None:
        raise _fail(f"signature ok, but record {check.index}'s inclusion is unchecked: give --record")
    typer.echo(f"ok: record {check.index} is in the signed tree of {check.size}")


@attest_app.command("checkpoint")
def checkpoint_command(
    directory: Annotated[Path, typer.Argument(help="The attestation directory.")],
    dex: Annotated[str, typer.Option(help="The log's dex (its origin is perpbox/<dex>).")],
    attest_key: Annotated[Path, typer.Option("--attest-key", help="The log's signing key.")],
) -> None:
    """Write a checkpoint now (when no relay holds the log; a running relay takes SIGUSR1).

    Example: perpbox attest checkpoint attest/ --dex xyz --attest-key xyz-attest.key
    """
    from perpbox.deployer.attestlog import AttestError, AttestLog

    try:
        log = AttestLog.open(directory, dex, attest_key)
    except AttestError as e:
        raise _fail(str(e)) from None
    try:
        size = log.checkpoint()
    finally:
        log.close()
    typer.echo(f"checkpoint of {size} records written" if size else "nothing new since the last checkpoint")


def register(app: typer.Typer) -> None:
    app.add_typer(deployer_app, name="deployer")
    app.add_typer(attest_app, name="attest")
