"""The ``perpbox`` command."""

from __future__ import annotations

import typer

from perpbox import __version__

app = typer.Typer(
    help="perpbox: a deterministic perpetual-futures exchange engine and its tools.\n\n"
    "Examples:\n\n  perpbox demo\n\n  perpbox demo --seed 7 --steps 400\n\n  perpbox version",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print perpbox's version."""
    typer.echo(__version__)


@app.command()
def demo(
    seed: int = typer.Option(1, help="Seed of the simulated session (same seed, same session)."),
    steps: int = typer.Option(300, help="Number of simulated order-flow steps."),
) -> None:
    """Run a short seeded exchange session and print the book, fills, positions and margin.

    Example: perpbox demo --seed 7 --steps 400
    """
    from perpbox.demo import run_demo

    run_demo(seed=seed, steps=steps)


if __name__ == "__main__":
    app()
