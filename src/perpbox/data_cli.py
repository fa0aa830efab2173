"""Venue data kit commands: ``scan``, ``funding``, ``watch``, ``record`` (venues_cli) and ``report``
(report_cli). Each module registers its own commands so they can grow independently."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from perpbox import report_cli, venues_cli

    venues_cli.register(app)
    report_cli.register(app)
