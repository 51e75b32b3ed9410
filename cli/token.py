"""``fairgate token``: write a probe token to a file the service and the prober share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def token(
    output: Annotated[
        Path, typer.Option(dir_okay=False, help="File to write (kept if it exists).")
    ],
) -> None:
    """Write a fresh random probe token to OUTPUT (mode 0600), unless it already holds one.

    Point FAIRGATE_PROBE_TOKEN_FILE at it for both the service and the prober
    (docker-compose does). Kept across restarts, so a running prober stays valid.
    """
    from fairgate.probe_auth import new_token, token_from_env

    if output.exists():
        token_from_env({"FAIRGATE_PROBE_TOKEN_FILE": str(output)})  # unreadable or short: fail
        typer.echo(f"kept the probe token in {output}")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(new_token() + "\n")
    typer.echo(f"wrote a new probe token to {output}")
