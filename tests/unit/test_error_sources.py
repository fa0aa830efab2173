"""Every error string in ``perpbox.core.errors`` and every ``exchange.results.OrderStatus`` says
where it comes from, and the two strings that public reports once disputed hold the evidenced text.

Sources are comments in the module itself (its docstring gives the forms): a ``[...]`` citation or
``perpbox wording``, on the constant's own line(s) or on the comment lines directly above it.  The
expected texts below are typed from the evidence cited at ``TICK``, ``INVALID_PRICE`` and
``MISSING_ORDER``, not read from the module.
"""

from __future__ import annotations

import ast
import asyncio
import io
import re
import tokenize
from pathlib import Path
from typing import Any

import msgspec
from eth_account import Account

from perpbox.api import signing
from perpbox.api.actions import ExchangeAPI
from perpbox.core import errors as E
from perpbox.core.numbers import USD
from perpbox.exchange import commands as C
from perpbox.exchange import results
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import OrderStatus, Response
from perpbox.market import MarginTable, MarketSpec

ERRORS_PY = Path(E.__file__)
RESULTS_PY = Path(results.__file__)
MARKER = re.compile(r"\[[^\]\s][^\]]*\]|perpbox wording")

# the evidence, as the venue printed it
TICK_BTC = "Price must be divisible by tick size. asset=0"  # BTC, asset 0 on mainnet and in perpbox's demo
TICK_BTC_TESTNET = "Price must be divisible by tick size. asset=3"  # hftbacktest note §11.5: BTC 12345.6
INVALID_PRICE = "Order has invalid price."  # hummingbot#8356, JKorf HyperLiquidErrors.cs: no suffix
MISSING_ASSET_0 = "Order was never placed, already canceled, or filled. asset=0"  # nktkas _common.ts.test.ts
MISSING_ASSET_4 = "Order was never placed, already canceled, or filled. asset=4"  # tickwright probes P4


# ---- the source markers ---------------------------------------------------------------------------
def source_notes(source: str, class_name: str | None = None) -> dict[str, list[str]]:
    """Each public module-level assignment of ``source`` (with ``class_name``: each in that class's
    body, as an enum's members): the comments on its lines and on the comment-only lines directly
    above it."""
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out: dict[str, list[str]] = {}
    body = ast.parse(source).body
    if class_name is not None:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name).body
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        else:
            continue
        if not isinstance(target, ast.Name) or target.id.startswith("_"):
            continue
        end = node.end_lineno or node.lineno
        notes = [comments[n] for n in range(node.lineno, end + 1) if n in comments]
        above = node.lineno - 1
        while above in comments and above not in code_lines:
            notes.append(comments[above])
            above -= 1
        out[target.id] = notes
    return out


def unsourced(source: str, class_name: str | None = None) -> list[str]:
    notes_of = source_notes(source, class_name)
    return [name for name, notes in notes_of.items() if not any(MARKER.search(n) for n in notes)]


def test_every_public_error_string_names_its_source() -> None:
    source = ERRORS_PY.read_text(encoding="utf-8")
    assert unsourced(source) == []
    public = {k for k, v in vars(E).items() if not k.startswith("_") and k.isupper() and isinstance(v, str)}
    assert public <= set(source_notes(source))  # every public string is assigned here, so checked above
    assert len(public) > 40


def test_every_order_status_names_its_source() -> None:
    """``exchange.results.OrderStatus`` follows the same rule, member by member."""
    source = RESULTS_PY.read_text(encoding="utf-8")
    assert unsourced(source, "OrderStatus") == []
    assert set(source_notes(source, "OrderStatus")) == {s.name for s in OrderStatus}  # every member checked


def test_the_marker_check_sees_a_missing_source() -> None:
    src = (
        'A = "x"  # [REF §3.10 DOCS]\n'
        "# [owner/repo path/file.py]\n"
        "# continued\n"
        'B = "y"\n'
        'C = "z"  # perpbox wording\n'
        "\n"
        "# a comment above a blank line is not this constant's\n"
        "\n"
        'D = "w"\n'
        'E = "v"  # a remark, not a source\n'
        "F = (\n"
        '    "long"  # [T1]\n'
        ")\n"
        '_PRIVATE = "not checked"\n'
    )
    assert unsourced(src) == ["D", "E"]
    enum = (
        "class S(StrEnum):\n"
        '    """doc"""\n'
        '    A = "a"  # [REF §2.2 DOCS]\n'
        "    # perpbox wording\n"
        '    B = "b"\n'
        '    C = "c"\n'
    )
    assert unsourced(enum, "S") == ["C"]


# ---- the two disputed strings ---------------------------------------------------------------------
def test_settled_texts() -> None:
    assert E.order_error(E.TICK, 0) == TICK_BTC
    assert E.order_error(E.TICK, 3) == TICK_BTC_TESTNET
    assert E.INVALID_PRICE == INVALID_PRICE
    assert E.order_error(E.MISSING_ORDER, 0) == MISSING_ASSET_0
    assert E.order_error(E.MISSING_ORDER, 4) == MISSING_ASSET_4


KEY = "0x" + "11" * 32
USER = Account.from_key(KEY).address.lower()
T0 = 1_700_000_000_000


class Venue:
    """``POST /exchange`` in process: the engine with BTC (szDecimals 5, so one price decimal) at
    $100,000, one funded account, and an in-process sequencer."""

    def __init__(self) -> None:
        self.ex = Exchange()
        self.nonce = T0
        btc = MarketSpec(name="BTC", asset=0, sz_decimals=5, margin_table=MarginTable.single(40))
        self.ex.apply(C.AddMarket(ts=T0, spec=btc, mark_px=1_000_000))
        self.ex.apply(C.Deposit(ts=T0, user=USER, usd=1_000_000 * USD))
        self.api = ExchangeAPI(self.ex, self.submit, lambda: self.nonce, network="testnet")

    async def submit(self, commands: list[C.Command], signer: str | None,
                     nonce: int | None) -> tuple[list[Response], str | None]:
        return [self.ex.execute(msgspec.structs.replace(cmd, ts=self.nonce)).response for cmd in commands], None

    def post(self, action: dict[str, Any]) -> dict[str, Any]:
        self.nonce += 1
        sig = signing.sign_l1_action(KEY, action, None, self.nonce, None, False)
        return asyncio.run(self.api.handle({"action": action, "nonce": self.nonce, "signature": sig}))

    def order(self, px: str, sz: str = "0.001") -> Any:
        wire = {"a": 0, "b": True, "p": px, "s": sz, "r": False, "t": {"limit": {"tif": "Gtc"}}}
        res = self.post({"type": "order", "orders": [wire], "grouping": "na"})
        return res["response"]["data"]["statuses"][0]

    def cancel(self, asset: int, oid: int) -> Any:
        res = self.post({"type": "cancel", "cancels": [{"a": asset, "o": oid}]})
        return res["response"]["data"]["statuses"][0]


def test_a_perp_price_with_more_than_five_significant_figures_breaks_the_tick_rule() -> None:
    v = Venue()
    assert v.order("100000.5") == {"error": TICK_BTC}  # one decimal is allowed; seven figures are not
    assert v.order("12345.6") == {"error": TICK_BTC}
    assert "resting" in v.order("100001")  # whole dollars are always allowed


def test_a_perp_price_with_more_decimals_than_its_unit_is_an_invalid_price() -> None:
    v = Venue()
    assert v.order("100000.55") == {"error": INVALID_PRICE}  # BTC prices carry at most 1 decimal
    assert v.order("99999.25") == {"error": INVALID_PRICE}


def test_cancel_of_an_unknown_asset_names_the_asset() -> None:
    assert Venue().cancel(7, 1) == {"error": "Order was never placed, already canceled, or filled. asset=7"}


def test_cancel_of_an_unknown_or_finished_order_names_the_asset() -> None:
    v = Venue()
    assert v.cancel(0, 42) == {"error": MISSING_ASSET_0}  # made up
    oid = v.order("99000")["resting"]["oid"]
    assert v.cancel(0, oid) == "success"
    assert v.cancel(0, oid) == {"error": MISSING_ASSET_0}  # already canceled
