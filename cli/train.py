"""``fairgate train``: train, audit, mitigate and store a model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cli.errors import console, fail

if TYPE_CHECKING:
    from training.lda_stage import LdaOutcome

_TRAIN_STEPS = 7


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
    mitigation: Annotated[
        str,
        typer.Option(
            help="lda: also search a less discriminatory alternative, an attribute-blind "
            "model with one cut-off for everyone (the default served policy); thresholds: "
            "group thresholds only (faster; the model then cannot serve --policy lda)."
        ),
    ] = "lda",
    attribute: Annotated[
        list[str],
        typer.Option(
            help="Protected attribute(s) to set thresholds per group of (repeatable); "
            "default: the contract's [groups] policy."
        ),
    ] = [],  # noqa: B006
    unseen_rule: Annotated[
        str, typer.Option(help="Rule for groups unseen at fit: most-lenient, pooled.")
    ] = "most-lenient",
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for intervals.")] = 200,
    data: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Your own CSV/Parquet loan book."),
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The book's data contract (TOML; draft one with `fairgate init`). "
            "Default: the built-in synthetic book's.",
        ),
    ] = None,
    map_: Annotated[list[str], typer.Option("--map", help="FILE_COLUMN=FIELD, repeatable.")] = [],  # noqa: B006
    reports: Annotated[Path, typer.Option(help="Where the audit report goes.")] = Path("reports"),
    name: Annotated[str, typer.Option(help="Model name in the BentoML store.")] = "fairgate-loan",
) -> None:
    """Train on the synthetic default (or --data FILE --contract FILE), audit, mitigate, save.

    --data is checked against the contract first and every bad column and value is reported
    at once. The contract is stored with the model: the service builds its request model from it.

    With FAIRGATE_ARTIFACT_KEY set, the stored model is signed (HMAC-SHA256 of its checksums);
    a service started with the same key refuses unsigned or mis-signed models.
    """
    from fairgate.config_error import ConfigError
    from fairgate.contract import ContractError
    from service.config import artifact_key_from
    from training.book_check import BookCheckError
    from training.loan_book import BiasConfig
    from training.pipeline import TrainConfig, run_training

    try:
        artifact_key = artifact_key_from(os.environ)
    except ConfigError as error:
        fail(error)

    try:
        config = TrainConfig(
            rows=rows,
            seed=seed,
            bias=BiasConfig(preset=bias, gap=gap),
            model=model,  # type: ignore[arg-type]
            include_sensitive=include_sensitive,
            constraint=constraint,  # type: ignore[arg-type]
            objective=objective,
            mitigation=mitigation,  # type: ignore[arg-type]
            attributes=tuple(attribute),  # type: ignore[arg-type]
            unseen_rule=unseen_rule,
            bootstrap=bootstrap,
            data=data,  # type: ignore[arg-type]
            contract=contract,
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

            result = run_training(config, step, artifact_key=artifact_key)
    except (ValueError, BookCheckError, ContractError) as error:
        fail(error)
    tradeoff = result.metrics["tradeoff"]
    typer.echo(f"saved {result.tag}")
    typer.echo(
        f"group thresholds (policy mitigated): demographic parity ratio "
        f"{_ratio(tradeoff['dp_ratio_before'])} -> "
        f"{_ratio(tradeoff['dp_ratio_after'])}; accuracy change {tradeoff['accuracy_cost']:+.1%}"
    )
    if result.lda is not None:
        typer.echo(lda_line(result.lda))
    typer.echo(f"audit report: {reports / 'audit.md'}")


def train_default() -> None:
    """Train the synthetic default (what ``fairgate train`` with no options does)."""
    typer.echo("no model yet: training the synthetic default (fairgate train)")
    train()


def lda_line(lda: LdaOutcome) -> str:
    """The search's outcome and what ``--policy lda`` serves, in one line."""
    chosen = lda.chosen
    dropped = f", without {', '.join(chosen.dropped)}" if chosen.dropped else ""
    return (
        f"less discriminatory alternative: {lda.selection.outcome}; policy lda serves "
        f"{chosen.name} (approve iff score > {chosen.threshold:.4f} for everyone{dropped})"
    )


def _ratio(value: float | None) -> str:
    # None: fewer than two policy groups large enough to judge (training/fairness.py).
    return "n/a (groups too small to judge)" if value is None else f"{value:.2f}"
