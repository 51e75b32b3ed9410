"""The ``fairgate`` Typer app: one command per deployable task, each in its own module."""

from __future__ import annotations

import typer

from cli.audit import audit
from cli.demo import demo
from cli.init import init
from cli.load import bench, loadtest
from cli.policy import policy
from cli.probe import probe
from cli.record import record
from cli.serve import serve
from cli.token import token
from cli.train import train

# Click's own help formatter, not Typer's Rich panels: at 80 columns the Rich table gives six
# fixed columns (long, short, negative long, negative short, type, help) and cuts option names
# ("--include-sensit…"), and Typer's Rich type column prints "<bool>" for every flag, even
# --help (TyperOption.display_type_rich has no flag case). Click wraps the help text instead
# and shows a boolean as "--flag / --no-flag".
app = typer.Typer(
    help="fairgate: loan decisions that measure their own fairness.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
# One-line summaries for the command list (Click cuts a longer first sentence with "...").
SUMMARIES = {
    init: "Draft a data contract from your own loan book.",
    train: "Train, audit, mitigate and store a model.",
    serve: "Serve the decision API on HOST:PORT.",
    probe: "Probe a service with counterfactual twins.",
    demo: "Train if needed, serve, and probe: the whole loop.",
    loadtest: "Load-test with Locust; exit 1 if an SLO is missed.",
    bench: "Benchmark the floor, /decide and a naive endpoint.",
    token: "Write a probe token file for the service and prober.",
    audit: "Live fairness figures recomputed from the decision record.",
}
for command, summary in SUMMARIES.items():
    app.command(short_help=summary)(command)
app.add_typer(record, name="record", short_help="Verify, export or prune the decision record.")
app.add_typer(policy, name="policy", short_help="Online thresholds: recalibrate, diff, promote.")

if __name__ == "__main__":
    app()
