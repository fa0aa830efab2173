"""How the commands print: the console for their tables, and their --help text."""

from __future__ import annotations

import inspect

import typer
from rich.console import Console


def table_console(width: int = 180) -> Console:
    """Stdout as rich sees it — on a terminal its own width; into a pipe or a log file ``width``
    columns (rich's default of 80 would squeeze a wide table into ellipses)."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, width))


def reflow(text: str) -> str:
    """A help text as typer's rich formatter should get it: its paragraphs (blank-line separated)
    each on one line, so the terminal wraps them — typer keeps the source's line breaks in every
    paragraph but the first.  An indented paragraph (an example command) stays indented, joined
    into one line; a line starting with ``- `` or ``* `` keeps its break (a list)."""
    out = []
    for para in text.strip().split("\n\n"):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        indent = "  " if para.lstrip("\n").startswith("  ") else ""
        joined: list[str] = []
        for ln in lines:
            if joined and not ln.startswith(("- ", "* ")):
                joined[-1] += " " + ln
            else:
                joined.append(ln)
        out.append("\n".join(indent + ln for ln in joined))
    return "\n\n".join(out)


def reflow_help(app: typer.Typer) -> None:
    """``reflow`` every command's help in ``app`` and its groups (their docstrings included)."""
    for cmd in app.registered_commands:
        text = cmd.help or inspect.getdoc(cmd.callback)
        if text:
            cmd.help = reflow(text)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            info = group.typer_instance.info
            if isinstance(info.help, str):
                info.help = reflow(info.help)
            reflow_help(group.typer_instance)
