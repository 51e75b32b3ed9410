"""``fairgate loadtest`` and ``fairgate bench``: Locust runs against a started service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail
from cli.train import train_default
from service.launch import REPO

if TYPE_CHECKING:
    from fairgate.contract import Contract

DEFAULT_SLO = REPO / "loadtests" / "slo.toml"


def loadtest(
    target: Annotated[
        str | None, typer.Option(help="Service base URL; without it, one is started.")
    ] = None,
    users: Annotated[int, typer.Option(min=1, help="Concurrent Locust users.")] = 20,
    run_time: Annotated[str, typer.Option(help="Locust run time, e.g. 10s, 2m.")] = "30s",
    spawn_rate: Annotated[float, typer.Option(help="Users started per second.")] = 20.0,
    workers: Annotated[int, typer.Option(min=1, help="Workers of the started service.")] = 1,
    slo_file: Annotated[
        Path, typer.Option("--slo", exists=True, dir_okay=False, help="SLO TOML file.")
    ] = DEFAULT_SLO,
    out: Annotated[Path, typer.Option(help="Directory for Locust's CSV and HTML.")] = Path(
        "loadtest-out"
    ),
    drift: Annotated[
        str,
        typer.Option(
            envvar="FAIRGATE_DRIFT",
            help="Shift the population: FIELD*FACTOR[@FIELD=VALUE], comma-separated, "
            "e.g. annual_income*0.8@gender=female.",
        ),
    ] = "",
) -> None:
    """Headless Locust run of loadtests/locustfile.py; exits 1 if an SLO is missed."""
    import tomllib
    from contextlib import nullcontext

    from fairgate.artifacts import ArtifactError, ModelNotFound, load_serving_bundle
    from fairgate.probe_auth import new_token
    from fairgate.schema import SYNTHETIC_CONTRACT
    from loadtests.failures import probe_token_hint, read_failures
    from loadtests.runner import LocustRun, run_locust
    from loadtests.server import Server, running_server
    from loadtests.slo import SloError, slo_from_mapping, violations

    try:
        slo = slo_from_mapping(tomllib.loads(slo_file.read_text()))
    except (SloError, tomllib.TOMLDecodeError) as error:
        fail(f"{slo_file}: {error}")
    if target is not None and drift:
        _check_drift(drift, _served_contract(target))
    elif target is None:
        try:
            # The drift is checked before a model is trained or a service started: against
            # the stored model's contract, or the default book's when it is about to be trained.
            _check_drift(drift, load_serving_bundle().contract)
        except ModelNotFound:
            _check_drift(drift, SYNTHETIC_CONTRACT)
            train_default()
        except ArtifactError as error:
            fail(error)
    # The locustfile's probe pairs carry FAIRGATE_PROBE_TOKEN; a service started here gets the
    # same one (a fresh one unless set). Against --target, set the target's own token.
    given_token = os.environ.get("FAIRGATE_PROBE_TOKEN")
    token = given_token or new_token()
    env = {"FAIRGATE_PROBE_TOKEN": token}
    server = (
        running_server(workers=workers, env=env)
        if target is None
        else nullcontext(Server(target, 0))
    )
    with server as running:
        if target is None and drift:
            # The pool is built from the started service's own contract (its GET /policy),
            # which FAIRGATE_MODEL may make another model's than the one checked above.
            _check_drift(drift, _served_contract(running.url))
        drifted = f", drift {drift}" if drift else ""
        typer.echo(f"load test: {users} users for {run_time} against {running.url}{drifted}")
        # Always set, so the run's drift is the one checked here, never a stale one.
        locust_env = env | {"FAIRGATE_DRIFT": drift}
        stats = run_locust(
            LocustRun(
                host=running.url,
                users=users,
                run_time=run_time,
                spawn_rate=spawn_rate,
                env=locust_env,
            ),
            out / "locust",
            html=out / "report.html",
            progress=lambda line: typer.echo(f"  {line}"),
        )
    for row in stats.values():
        typer.echo(
            f"{row.name:32} {row.requests:8d} req  {row.failures:5d} failed  "
            f"{row.rps:8.1f} req/s  p50 {row.p50_ms:5.0f}  p95 {row.p95_ms:5.0f}  "
            f"p99 {row.p99_ms:5.0f} ms"
        )
    typer.echo(f"reports: {out / 'report.html'}, {out / 'locust_stats.csv'}")
    missed = violations(stats["Aggregated"], slo)
    if missed:
        for line in missed:
            typer.echo(f"SLO missed: {line}")
        hint = probe_token_hint(read_failures(out / "locust_failures.csv"), bool(given_token))
        if hint is not None:
            typer.echo(f"hint: {hint}")
        raise typer.Exit(1)
    typer.echo(f"all SLOs met ({slo_file})")


def _check_drift(drift: str, contract: Contract) -> None:
    """Exit 2 with the ``DriftError`` message if ``drift`` does not fit ``contract``."""
    from loadtests.drift import DriftError, parse_drift

    try:
        parse_drift(drift, contract)
    except DriftError as error:
        fail(f"--drift: {error}")


def _served_contract(url: str) -> Contract:
    """The contract of the service at ``url`` (its ``GET /policy``): the load pool's."""
    from loadtests.pool import target_policy

    try:
        return target_policy(url)[0]
    except (OSError, ValueError, KeyError) as error:
        fail(f"--drift: cannot read the contract of {url} (GET /policy/): {error}")


def bench(
    duration: Annotated[int, typer.Option(min=3, help="Seconds per Locust run.")] = 20,
    users: Annotated[int, typer.Option(min=1, help="Locust users per run.")] = 20,
    out: Annotated[
        Path, typer.Option(help="Results: Locust CSVs, benchmarks.md, the naive model.")
    ] = Path("bench-out"),
    update_doc: Annotated[
        bool, typer.Option(help="Also rewrite the generated part of docs/benchmarks.md.")
    ] = False,
    rounds: Annotated[
        int,
        typer.Option(
            min=1, help="Interleaved rounds of the validating floor and /decide record off/on."
        ),
    ] = 3,
) -> None:
    """Floor vs /decide vs naive ThresholdOptimizer endpoint, in one run."""
    from loadtests.bench import BenchConfig, run_bench, write_results

    section = run_bench(
        BenchConfig(duration_seconds=duration, users=users, out=out, rounds=rounds),
        log=typer.echo,
    )
    typer.echo(section)
    for path in write_results(section, out, update_doc=update_doc):
        typer.echo(f"wrote {path}")
