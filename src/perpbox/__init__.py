"""perpbox: a deterministic perpetual-futures exchange engine and the tools built on it."""

__version__ = "0.1.0"


def _warn_if_compiled_modules_are_stale() -> None:
    """A compiled module (mypyc, see setup.py) shadows its source; after an edit the old binary
    would silently keep running, so say so once at import."""
    import warnings
    from pathlib import Path

    root = Path(__file__).parent
    stale = [
        str(so.relative_to(root))
        for so in root.glob("*/*.so")
        if (py := so.with_name(so.name.split(".", 1)[0] + ".py")).exists() and py.stat().st_mtime > so.stat().st_mtime
    ]
    if stale:
        warnings.warn(f"perpbox: compiled modules older than their sources ({', '.join(stale)}); "
                      "reinstall (pip install -e .) to rebuild them", stacklevel=2)


_warn_if_compiled_modules_are_stale()
