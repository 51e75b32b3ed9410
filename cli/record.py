"""``fairgate record verify|export|prune``: the decision record at ``FAIRGATE_RECORD_URL``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import console, fail

record = typer.Typer(
    help="The decision record at FAIRGATE_RECORD_URL (sqlite:///FILE or postgresql://...).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
SHOWN_PROBLEMS = 50


def _open() -> Any:
    """The existing record named by the environment, or a clear error and exit 2."""
    from fairgate.record import ENV_VAR, RecordUrlError, open_record, parse_record_url
    from fairgate.record.store import store_errors

    try:
        url = parse_record_url(os.environ.get(ENV_VAR))
    except RecordUrlError as error:
        fail(error)
    try:
        return open_record(url, create=False)
    except store_errors() as error:
        fail(f"cannot open the record ({ENV_VAR}): {error}")


@record.command(short_help="Check every hash chain; exit 1 if tampered.")
def verify() -> None:
    """Check the record's hash chains: exit 0 if intact, 1 listing every edited,
    deleted or inserted row."""
    from fairgate.record.store import store_errors

    store = _open()
    try:
        report = store.verify()
    except store_errors() as error:
        fail(f"cannot read the record: {error}")
    finally:
        store.close()
    if report.ok:
        console.print(f"ok: {report.rows:,} records in {report.writers:,} chains, intact")
        return
    for problem in report.problems[:SHOWN_PROBLEMS]:
        console.print(str(problem), markup=False, highlight=False)
    if len(report.problems) > SHOWN_PROBLEMS:
        console.print(f"... and {len(report.problems) - SHOWN_PROBLEMS:,} more")
    console.print(
        f"TAMPERED: {len(report.problems):,} problems in {report.rows:,} records "
        f"({report.writers:,} chains)"
    )
    raise typer.Exit(1)


def _moment(text: str | None, option: str) -> datetime | None:
    from fairgate.record.retention import DurationError, parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text, datetime.now(UTC))
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint=option) from error


@record.command(short_help="Write records of a time range to Parquet or CSV.")
def export(
    output: Annotated[Path, typer.Option(help="File to write.")],
    since: Annotated[
        str | None, typer.Option(help="From: a date (2026-01-31) or a duration ago (30d).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to, excluded (default: now).")] = None,
    format: Annotated[str, typer.Option(help="parquet or csv.")] = "parquet",
) -> None:
    """Write the records with SINCE <= time < UNTIL to OUTPUT."""
    from fairgate.record.export import FORMATS
    from fairgate.record.store import store_errors

    if format not in FORMATS:
        raise typer.BadParameter(f"expected parquet or csv (got {format!r})", param_hint="--format")
    low, high = _moment(since, "--since"), _moment(until, "--until")
    store = _open()
    try:
        count = store.export(output, since=low, until=high, format=format)
    except store_errors() as error:
        fail(f"cannot export the record: {error}")
    finally:
        store.close()
    console.print(f"wrote {count:,} records to {output}")


@record.command(short_help="Delete records past retention (default 25 months).")
def prune(
    older_than: Annotated[
        str, typer.Option(help="Keep this much: 30d, 2w, 6mo, 25mo, 2y.")
    ] = "25mo",
) -> None:
    """Delete records older than --older-than. The default, 25 months, is ECOA /
    Regulation B record keeping; the EU AI Act asks for at least six months. verify
    stays clean: each chain restarts at its first kept row."""
    from fairgate.record.retention import DurationError, parse_duration
    from fairgate.record.store import store_errors

    try:
        span = parse_duration(older_than)
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from error
    store = _open()
    try:
        removed = store.prune(span)
    except store_errors() as error:
        fail(f"cannot prune the record: {error}")
    finally:
        store.close()
    console.print(f"pruned {removed:,} records older than {older_than}")
