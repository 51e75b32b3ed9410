"""``fairgate``: the one command users learn (train, serve, probe, demo, bench, loadtest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

app = typer.Typer(
    help="fairgate: loan decisions that measure their own fairness.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

_TRAIN_STEPS = 6


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise typer.BadParameter(
                f"expected FILE_COLUMN=FIELD, got {pair!r}", param_hint="--map"
            )
        mapping[source] = target
    return mapping


@app.command()
def train(
    rows: Annotated[
        int, typer.Option(min=1000, help="Synthetic applications to generate.")
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed for every random draw.")] = 42,
    bias: Annotated[
        str, typer.Option(help="Historical bias: none, income-bar, proxy.")
    ] = "income-bar",
    gap: Annotated[
        float, typer.Option(help="Extra income (dollars) the biased bar demands.")
    ] = 30_000.0,
    model: Annotated[str, typer.Option(help="logistic or gbm.")] = "logistic",
    include_sensitive: Annotated[
        bool,
        typer.Option(help="Give the model the protected attributes as features (a naive model)."),
    ] = False,
    constraint: Annotated[
        str, typer.Option(help="ThresholdOptimizer constraint.")
    ] = "demographic_parity",
    objective: Annotated[
        str, typer.Option(help="ThresholdOptimizer objective.")
    ] = "accuracy_score",
    attribute: Annotated[
        list[str],
        typer.Option(
            help="Protected attribute(s) the thresholds are per group of (repeat for intersections)."
        ),
    ] = ["gender"],  # noqa: B006
    unseen_rule: Annotated[
        str, typer.Option(help="Rule for groups unseen at fit: most-lenient, pooled.")
    ] = "most-lenient",
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for intervals.")] = 200,
    data: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Your own CSV/Parquet loan book."),
    ] = None,
    label_column: Annotated[str, typer.Option(help="0/1 label column in --data.")] = "approved",
    map_: Annotated[list[str], typer.Option("--map", help="FILE_COLUMN=FIELD, repeatable.")] = [],  # noqa: B006
    reports: Annotated[Path, typer.Option(help="Where the audit report goes.")] = Path("reports"),
    name: Annotated[str, typer.Option(help="Model name in the BentoML store.")] = "fairgate-loan",
) -> None:
    """Train on the synthetic default (or --data), audit, mitigate, save to the model store."""
    from training.loan_book import BiasConfig, LoanBookError
    from training.pipeline import TrainConfig, run_training

    try:
        config = TrainConfig(
            rows=rows,
            seed=seed,
            bias=BiasConfig(preset=bias, gap=gap),
            model=model,  # type: ignore[arg-type]
            include_sensitive=include_sensitive,
            constraint=constraint,  # type: ignore[arg-type]
            objective=objective,
            attributes=tuple(attribute),  # type: ignore[arg-type]
            unseen_rule=unseen_rule,
            bootstrap=bootstrap,
            data=data,  # type: ignore[arg-type]
            label_column=label_column,
            column_map=_parse_map(map_),
            reports_dir=reports,
            model_name=name,
        )
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("training", total=_TRAIN_STEPS)

            def step(label: str) -> None:
                progress.update(task, description=label, advance=1)

            result = run_training(config, step)
    except (ValueError, LoanBookError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    tradeoff = result.metrics["tradeoff"]
    typer.echo(f"saved {result.tag}")
    typer.echo(
        f"demographic parity ratio {tradeoff['dp_ratio_before']:.2f} -> "
        f"{tradeoff['dp_ratio_after']:.2f}; accuracy change {tradeoff['accuracy_cost']:+.1%}"
    )
    typer.echo(f"audit report: {reports / 'audit.md'}")


def service_env(workers: int) -> dict[str, str]:
    """Environment for ``bentoml serve``: one OpenMP thread per worker avoids oversubscription."""
    return os.environ | {"OMP_NUM_THREADS": "1", "FAIRGATE_WORKERS": str(workers)}


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="BentoML API workers.")] = 2,
    model_tag: Annotated[
        str, typer.Option("--model", help="Model tag in the store.")
    ] = "fairgate-loan:latest",
) -> None:
    """Serve the decision API (BentoML) on HOST:PORT."""
    from fairgate.artifacts import ArtifactError, load_serving_bundle

    try:
        load_serving_bundle(model_tag)
    except ArtifactError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    env = service_env(workers) | {"FAIRGATE_MODEL": model_tag}
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service.service:DecisionService",
        "--host",
        host,
        "--port",
        str(port),
    ]
    raise typer.Exit(subprocess.call(command, env=env, cwd=Path(__file__).resolve().parent.parent))


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":
    app()
