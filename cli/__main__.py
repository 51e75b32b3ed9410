"""``python -m cli ...`` is the ``fairgate`` command (used by tests that need an interpreter)."""

from cli.main import app

app(prog_name="fairgate")
