"""``fairgate``: the one command users learn (train, serve, probe, demo, bench, loadtest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fairgate.launch import serve_command, service_env

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
        typer.Option(help="Protected attribute(s) to set thresholds per group of (repeatable)."),
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


def train_default() -> None:
    typer.echo("no model yet: training the synthetic default (fairgate train)")
    app(["train"], standalone_mode=False)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="BentoML API workers.")] = 2,
    model_tag: Annotated[
        str, typer.Option("--model", help="Model tag in the store.")
    ] = "fairgate-loan:latest",
    policy: Annotated[
        str,
        typer.Option(help="mitigated (group rules) or unmitigated (one 0.5 threshold)."),
    ] = "mitigated",
    train_if_missing: Annotated[
        bool,
        typer.Option(help="Train the synthetic default first if the store has no model."),
    ] = False,
) -> None:
    """Serve the decision API (BentoML) on HOST:PORT."""
    from fairgate.artifacts import ArtifactError, ModelNotFound, load_serving_bundle

    try:
        try:
            load_serving_bundle(model_tag, policy)
        except ModelNotFound:
            if not train_if_missing:
                raise
            train_default()
            load_serving_bundle(model_tag, policy)
    except ArtifactError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    env = service_env(workers) | {"FAIRGATE_MODEL": model_tag, "FAIRGATE_POLICY": policy}
    raise typer.Exit(
        subprocess.call(
            serve_command(host, port), env=env, cwd=Path(__file__).resolve().parent.parent
        )
    )


@app.command()
def probe(
    target: Annotated[str | None, typer.Option(help="Base URL of the decision service.")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between cycles.")] = None,
    pairs: Annotated[int | None, typer.Option(help="Twin pairs per attribute per cycle.")] = None,
    gap_sample: Annotated[int | None, typer.Option(help="Applicants for the income gap.")] = None,
    attribute: Annotated[list[str] | None, typer.Option(help="Attribute to flip (repeat).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the probe population.")] = None,
    listen: Annotated[
        str | None, typer.Option("--web.listen-address", help="HOST:PORT for /metrics.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config.file", exists=True, help="TOML file of settings.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Run one cycle, print the audit, exit.")] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="With --once: write JSON.")
    ] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="With --once: write Markdown.")
    ] = None,
) -> None:
    """Counterfactual prober: twins differing only in a protected attribute, as probes."""
    import logging
    import tomllib

    from monitoring.audit import markdown, print_audit, to_json
    from monitoring.client import DecisionClient
    from monitoring.config import ConfigError, config_from_mapping, env_mapping
    from monitoring.runner import probe_once, serve_forever

    raw: dict = tomllib.loads(config_file.read_text()) if config_file else {}
    raw |= env_mapping(os.environ)
    flags = {
        "target": target,
        "interval_seconds": interval,
        "pairs": pairs,
        "gap_sample": gap_sample,
        "attributes": attribute,
        "seed": seed,
        "listen_address": listen,
    }
    raw |= {k: v for k, v in flags.items() if v is not None}
    try:
        config = config_from_mapping(raw)
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    if not once:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        serve_forever(config)
        return
    client = DecisionClient(config.target, timeout=config.timeout_seconds)
    result = probe_once(config, None, 0, client)
    if result is None:
        console.print(f"[red]error:[/red] probing {config.target} failed (see log above)")
        raise typer.Exit(1)
    print_audit(result, Console())
    if json_out:
        json_out.write_text(to_json(result))
    if markdown_out:
        markdown_out.write_text(markdown(result))


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Service port.")] = 3000,
    probe_port: Annotated[int, typer.Option(help="Prober /metrics port.")] = 9109,
    once: Annotated[bool, typer.Option(help="Stop after the first audit.")] = False,
) -> None:
    """Train the default model if none exists, serve it, and probe it."""
    import time

    import httpx

    from fairgate.artifacts import ArtifactError, ModelNotFound, load_serving_bundle

    try:
        load_serving_bundle()
    except ModelNotFound:
        train_default()
    except ArtifactError as error:  # corrupted or tampered: never retrain over it silently
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    env = service_env(2)
    server = subprocess.Popen(
        serve_command("127.0.0.1", port),
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise typer.Exit(1)
            time.sleep(0.5)
        typer.echo(f"service ready on {url} (try {url}/docs.json, {url}/policy)")
        app(["probe", "--once", "--target", url], standalone_mode=False)
        if not once:
            typer.echo(
                f"probing every 30 s; prober metrics on http://127.0.0.1:{probe_port}/metrics"
            )
            app(
                ["probe", "--target", url, "--web.listen-address", f"127.0.0.1:{probe_port}"],
                standalone_mode=False,
            )
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(30)


def _register_load_commands() -> None:
    from loadtests.commands import bench, loadtest

    app.command()(loadtest)
    app.command()(bench)


_register_load_commands()

if __name__ == "__main__":
    app()
