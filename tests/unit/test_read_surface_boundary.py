"""The layers above the engine read it through its read surface only (``exchange/reads.py``).

An AST check over every module under ``api/``, ``agents/``, ``store/`` and ``cli/``: on an object
that is the engine — a name ``ex`` / ``exchange`` / ``engine``, or an attribute of that name
(``self.ex``, ``info.ex``, ``self.venue.ex``, ``state.ex``) — the only attributes used are
``reads`` and the command and log entry points.  Anything else (the engine's state such as
``markets``, ``ledger``, ``books``, or its own query methods such as ``mark``) would tie the caller
to where the engine keeps its state today, which is what the read surface exists to hide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import perpbox
from perpbox.exchange import engine

SRC = Path(perpbox.__file__).resolve().parent
LAYERS = ("api", "agents", "store", "cli")
ENGINE_NAMES = frozenset({"ex", "exchange", "engine"})
# what a caller may use of the engine: its read surface, and the command and log entry points
ENTRY_POINTS = frozenset({"reads", "apply", "replay", "state_hash", "snapshot_state", "restore", "execute"})
# the engine internals this guards against, named for the failure message (any other name not in
# ENTRY_POINTS fails too)
INTERNALS = frozenset({
    "markets", "rules", "books", "ledger", "pricing", "config", "margin", "prices", "last_px", "oi", "holders",
    "orders", "triggers", "dexes", "dex_deployer", "dex_oi_cap", "gates", "position_index", "sink", "spot_quotes",
    "perp_quotes", "volume", "day_volume", "exchange_volume", "access", "deploy", "funding", "liquidation_log",
})


def _is_engine(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ENGINE_NAMES
    return isinstance(node, ast.Attribute) and node.attr in ENGINE_NAMES


def engine_reads(source: str) -> list[tuple[int, str]]:
    """(line, attribute) of every use of the engine beyond its entry points in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_engine(node.value) and node.attr not in ENTRY_POINTS:
            out.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) >= 2 and _is_engine(node.args[0]) and isinstance(node.args[1], ast.Constant)
              and node.args[1].value not in ENTRY_POINTS):
            out.append((node.lineno, str(node.args[1].value)))
    return sorted(out)


def modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (SRC / layer).rglob("*.py"))


def test_the_layers_above_read_the_engine_through_its_read_surface() -> None:
    found = []
    for path in modules():
        rel = path.relative_to(SRC).as_posix()
        for line, attr in engine_reads(path.read_text()):
            kind = "engine state" if attr in INTERNALS else "not on the read surface"
            found.append(f"src/perpbox/{rel}:{line}: .{attr} ({kind}: use ex.reads)")
    assert not found, "\n".join(found)


def test_the_check_sees_each_way_of_reaching_the_engine() -> None:
    source = "\n".join([
        "ex.markets", "self.ex.ledger.accounts", "info.ex.books[0]", "self.venue.ex.mark(0)",
        "exchange.config", "getattr(self.ex, 'prices')", "ex.reads.markets()", "ex.apply(cmd)",
        "self.ex.state_hash()", "other.markets", "ex_reads.markets",
    ])
    assert engine_reads(source) == [(1, "markets"), (2, "ledger"), (3, "books"), (4, "mark"), (5, "config"),
                                    (6, "prices")]


def test_no_engine_state_is_an_entry_point() -> None:
    """The engine's state attributes (``engine.STATE``) and its components are never allowed."""
    assert not (set(engine.STATE) | {"access", "deploy", "funding", "margin", "sink"}) & ENTRY_POINTS
