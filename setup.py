"""Compiled build of the engine's hot modules with mypyc (the default).

``pip install -e .`` compiles the order book, ledger, margin view, market rules and exchange from
the same typed sources (about 1.7x the pure modules' throughput on ``bench/engine.py``).  The pure
modules stay the reference: ``tests/unit/test_compiled_build.py`` checks the compiled engine
against them command by command.  ``PERPBOX_PURE=1 pip install -e .`` installs plain Python; the
extensions are optional, so a machine without a C compiler gets the pure modules too.  After
editing a compiled module, reinstall: Python loads the compiled module before the source (perpbox
warns at import when one is older than its source).

The build takes a few minutes, and pip shows nothing of a build backend's output unless run with
``-v``, so the steps are announced on the terminal itself (``/dev/tty``: pip captures stdout and
stderr, but the build runs in the user's terminal session); without a terminal (CI, a pipe) they go
to stderr, which pip prints with ``-v`` or when the build fails.  The metadata steps pip runs
before the build (``egg_info``, ``dist_info``) do not need the extensions, so they skip mypyc.
"""

from __future__ import annotations

import os
import sys
import time

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "src/perpbox/book/book.py",
    "src/perpbox/book/order.py",
    "src/perpbox/ledger/ledger.py",
    "src/perpbox/ledger/entry.py",
    "src/perpbox/market/rules.py",
    "src/perpbox/risk/margin.py",
    "src/perpbox/exchange/engine.py",
    "src/perpbox/exchange/markets.py",
    "src/perpbox/exchange/prices.py",
    "src/perpbox/exchange/holdings.py",
    "src/perpbox/exchange/controls.py",
    "src/perpbox/exchange/volume.py",
    "src/perpbox/exchange/orders.py",
    "src/perpbox/exchange/triggers.py",
    "src/perpbox/exchange/liquidation.py",
    "src/perpbox/exchange/accounts.py",
    "src/perpbox/exchange/access.py",
    "src/perpbox/exchange/deploy.py",
    "src/perpbox/exchange/funding.py",
    "src/perpbox/exchange/sink.py",
    "src/perpbox/core/numbers.py",
]

METADATA_ONLY = {"egg_info", "dist_info"}
BUILDS = {"build", "build_ext", "build_py", "bdist_wheel", "editable_wheel", "develop", "install", "sdist", "bdist"}


_told = False


def tell(message: str, tty: str = "/dev/tty") -> None:
    """Print one ``perpbox build:`` line where the user sees it: the terminal (``tty``) when there is
    one, else stderr. On the terminal pip's spinner shares the line: the first message starts on a
    new line, later ones first erase the spinner's character."""
    global _told
    line = f"perpbox build: {message}\n"
    try:
        with open(tty, "w", encoding="utf-8") as out:
            out.write(("\r\x1b[K" if _told else "\n") + line)
        _told = True
        return
    except OSError:  # no controlling terminal (CI, cron, a container without -t)
        pass
    sys.stderr.write(line)
    sys.stderr.flush()


def wants_extensions(argv: list[str]) -> bool:
    """False for the metadata-only setup.py runs pip makes before the build (no mypyc needed)."""
    args = set(argv[1:])
    return not (args & METADATA_ONLY) or bool(args & BUILDS)


class AnnouncedBuildExt(build_ext):
    """``build_ext`` that says it is compiling and how long it took."""

    def run(self) -> None:
        if not self.extensions:
            super().run()
            return
        n = len(self.extensions)
        tell(f"compiling the generated C ({n} extensions) with the C compiler: the long step, about "
             "half a minute to two minutes with no output from the compiler")
        start = time.monotonic()
        super().run()
        built = sum(os.path.exists(self.get_ext_fullpath(ext.name)) for ext in self.extensions)
        took = f"{time.monotonic() - start:.0f} s"
        if built == n:
            tell(f"compiled engine built in {took}")
        else:
            tell(f"{n - built} of {n} extensions failed to compile ({took}); those modules run as pure Python "
                 "(pip install -v shows the compiler's errors)")


def extensions(argv: list[str]) -> list:
    if not wants_extensions(argv):
        return []
    if os.environ.get("PERPBOX_PURE") == "1":
        tell("PERPBOX_PURE=1: installing the pure-Python engine (nothing to compile)")
        return []
    from mypyc.build import mypycify

    tell(f"mypyc: type-checking {len(COMPILED)} engine modules and generating C (about 10-30 s), "
         "then the C compiler runs; `PERPBOX_PURE=1 pip install -e .` installs without compiling")
    start = time.monotonic()
    ext_modules = mypycify(COMPILED, opt_level="3")
    tell(f"mypyc: C generated in {time.monotonic() - start:.0f} s")
    for ext in ext_modules:
        ext.optional = True  # no compiler: the pure modules are used
    return ext_modules


if __name__ == "__main__":
    setup(ext_modules=extensions(sys.argv), cmdclass={"build_ext": AnnouncedBuildExt})
