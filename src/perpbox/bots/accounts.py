"""The accounts file every bot and monitor command shares (TOML), one table per account:

```toml
[hl_main]
venue = "hyperliquid:https://api.hyperliquid.xyz"   # any Hyperliquid-compatible URL: perpbox serve too
key_file = "keys/hl_main.key"                      # a hex private key (0x…), as a wallet exports it
account = "0x…"                                    # optional: the account an API wallet trades for
dex = "xyz"                                        # optional: a HIP-3 dex

[binance]
venue = "ccxt:binanceusdm"
credentials = { apiKey = "…", secret = "…" }       # or "env:NAME" values, read from the environment

[hl_local]
venue = "ccxt:hyperliquid@http://127.0.0.1:8080"   # ccxt:ID@URL: the venue's API at another server
credentials = { walletAddress = "0x…", privateKey = "env:HL_KEY" }
```

A ccxt account's credentials are ccxt's config keys (apiKey, secret, password, privateKey,
walletAddress, …); any other key goes to the exchange's options (Lighter's ``accountIndex`` and
``libraryPath``).  ``@URL`` replaces the scheme and host of every API base ccxt knows for the venue
(paths kept): how the tests point ccxt's hyperliquid at ``perpbox serve``.  What each venue needs is
in ``bots/data/venues.toml`` (``requires``).

Secrets never reach a log or an exception: an ``AccountSpec`` prints with its credentials masked,
and a value ``"env:NAME"`` is read from the environment when the venue is opened.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbox.bots.venue import Venue


class AccountsError(ValueError):
    """An accounts file that does not say what it must; the message names the account and key."""


@dataclass(frozen=True)
class AccountSpec:
    name: str
    kind: str  # hyperliquid | ccxt
    target: str  # the URL, or the ccxt exchange id
    key_file: Path | None = None
    account: str | None = None
    dex: str = ""
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        hidden = ", ".join(f"{k}=***" for k in sorted(self.credentials))
        return f"AccountSpec({self.name}: {self.kind}:{self.target}{', ' + hidden if hidden else ''})"


def _secret(value: str, where: str) -> str:
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise AccountsError(f"{where}: the environment has no {name}")
        return os.environ[name]
    return value


def parse_accounts(data: dict[str, Any], base_dir: Path) -> dict[str, AccountSpec]:
    out = {}
    for name, row in data.items():
        where = f"[{name}]"
        if not isinstance(row, dict):
            raise AccountsError(f"{where}: a table")
        unknown = sorted(set(row) - {"venue", "key_file", "account", "dex", "credentials"})
        if unknown:
            raise AccountsError(f"{where}: unknown key {unknown[0]!r}")
        venue = row.get("venue")
        if not isinstance(venue, str) or ":" not in venue:
            raise AccountsError(f"{where}.venue: 'hyperliquid:URL' or 'ccxt:ID'")
        kind, target = venue.split(":", 1)
        if kind == "hyperliquid":
            key = row.get("key_file")
            if not isinstance(key, str):
                raise AccountsError(f"{where}.key_file: a hyperliquid account needs its key file")
            out[name] = AccountSpec(name, kind, target, key_file=(base_dir / key).resolve(),
                                    account=row.get("account"), dex=str(row.get("dex", "")))
        elif kind == "ccxt":
            creds = row.get("credentials", {})
            if not isinstance(creds, dict) or not all(isinstance(v, str) for v in creds.values()):
                raise AccountsError(f"{where}.credentials: a table of strings")
            out[name] = AccountSpec(name, kind, target, credentials=dict(creds))
        else:
            raise AccountsError(f"{where}.venue: {kind!r} is not hyperliquid or ccxt")
    return out


def load_accounts(path: Path) -> dict[str, AccountSpec]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise AccountsError(f"{path}: {e}") from None
    return parse_accounts(data, Path(path).resolve().parent)


def open_venue(spec: AccountSpec) -> Venue:
    """The ``Venue`` an account trades on."""
    if spec.kind == "hyperliquid":
        from perpbox.api.signing import read_key_file
        from perpbox.bots.hyperliquid_venue import HyperliquidVenue

        assert spec.key_file is not None
        try:
            key = read_key_file(spec.key_file.read_text())
        except OSError as e:
            raise AccountsError(f"[{spec.name}].key_file: {e.strerror}") from None
        return HyperliquidVenue(spec.target, key, account=spec.account, dex=spec.dex, name=spec.name)
    from perpbox.bots.ccxt_venue import CcxtVenue, scrub
    from perpbox.bots.venue_meta import VenueMetaError

    ccxt_id, _, url = spec.target.partition("@")  # "ccxt:ID@URL": another server for the venue's API
    credentials = {k: _secret(v, f"[{spec.name}].credentials.{k}") for k, v in spec.credentials.items()}
    try:
        return CcxtVenue.open(ccxt_id, credentials, url=url or None, name=spec.name)
    except (VenueMetaError, ValueError) as e:  # names the venue or the URL, never a credential value
        raise AccountsError(scrub(f"[{spec.name}].venue: {e}", credentials.values())) from None
