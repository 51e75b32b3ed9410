"""The ``fairgate`` Typer app: one command per deployable task, each in its own module."""

from __future__ import annotations

import typer

from cli.demo import demo
from cli.init import init
from cli.load import bench, loadtest
from cli.probe import probe
from cli.serve import serve
from cli.train import train

app = typer.Typer(
    help="fairgate: loan decisions that measure their own fairness.",
    no_args_is_help=True,
    add_completion=False,
)
for command in (init, train, serve, probe, demo, loadtest, bench):
    app.command()(command)

if __name__ == "__main__":
    app()
