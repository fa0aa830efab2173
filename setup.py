"""Compiled build of the engine's hot modules with mypyc (the default).

``pip install -e .`` compiles the order book, ledger, margin view, market rules and exchange from
the same typed sources (about 1.7x the pure modules' throughput on ``bench/engine.py``).  The pure
modules stay the reference: ``tests/unit/test_compiled_build.py`` checks the compiled engine
against them command by command.  ``PERPBOX_PURE=1 pip install -e .`` installs plain Python; the
extensions are optional, so a machine without a C compiler gets the pure modules too.  After
editing a compiled module, reinstall: Python loads the compiled module before the source (perpbox
warns at import when one is older than its source).
"""

import os

from setuptools import setup

COMPILED = [
    "src/perpbox/book/book.py",
    "src/perpbox/book/order.py",
    "src/perpbox/ledger/ledger.py",
    "src/perpbox/ledger/entry.py",
    "src/perpbox/market/rules.py",
    "src/perpbox/risk/margin.py",
    "src/perpbox/exchange/engine.py",
    "src/perpbox/exchange/mechanics.py",
    "src/perpbox/core/numbers.py",
]

ext_modules = []
if os.environ.get("PERPBOX_PURE") != "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED, opt_level="3")
    for ext in ext_modules:
        ext.optional = True  # no compiler: the pure modules are used

setup(ext_modules=ext_modules)
