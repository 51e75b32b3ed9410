"""How a command reports a user error: one red line on stderr, then a non-zero exit."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code`` (2: bad input or setup)."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
