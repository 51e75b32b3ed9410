"""``fairgate record verify|export|prune``: the decision record ``fairgate serve`` writes.

Where it is comes from ``record.url.record_url``, as for the service:
FAIRGATE_RECORD_URL, else ``sqlite:///$FAIRGATE_DATA_DIR/record.sqlite`` (default
``./fairgate-data``) from the directory the command runs in.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import typer

from cli.errors import console, fail

record = typer.Typer(
    help="The decision record: FAIRGATE_RECORD_URL (sqlite:///FILE or postgresql://...), "
    "else ./fairgate-data/record.sqlite, where `fairgate serve` records by default.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
SHOWN_PROBLEMS = 50
CANNOT_OPEN: Final[str] = "cannot open the record ({variable}): {error}"
# Said when the default was looked for: the record may be where `fairgate serve` ran.
DEFAULT_LOOKED_FOR: Final[str] = (
    "; {variable} is not set, so this is the default under the current directory: run the "
    "command where `fairgate serve` ran, or set {variable}"
)
NOT_A_MOMENT: Final[str] = (
    "{text!r} is neither a date (2026-01-31, 2026-01-31T12:00:00Z) nor a duration before now "
    "(30m, 1h, 2d, 2w, 6mo, 1y)"
)
UNKNOWN_FORMAT: Final[str] = "expected parquet or csv (got {format!r})"
UNKNOWN_SUFFIX: Final[str] = (
    "cannot tell the format of {path}: name it .parquet or .csv, or give --format"
)
FORMAT_MISMATCH: Final[str] = "{path} is named {suffix} but --format is {format}: make them agree"
# Minutes and hours for the windows of export and audit only: ``prune --older-than`` takes
# days and longer, so a "6m" meant as six months can never prune all but six minutes.
_SHORT_SPAN: Final[re.Pattern[str]] = re.compile(r"^\s*(\d+)\s*(m|h)\s*$")


def open_existing_record(given: str | None = None) -> Any:
    """The existing record (``given``: a URL from a flag, else the environment's), or a
    clear error and exit 2."""
    from record import ENV_VAR, RecordUrlError, open_record
    from record.store import store_errors
    from record.url import record_url

    env = dict(os.environ) if given is None else os.environ | {ENV_VAR: given}
    try:
        url = record_url(env, Path.cwd())
    except RecordUrlError as error:
        fail(error)
    try:
        return open_record(url, create=False)
    except store_errors() as error:
        hint = "" if env.get(ENV_VAR) else DEFAULT_LOOKED_FOR.format(variable=ENV_VAR)
        fail(CANNOT_OPEN.format(variable=ENV_VAR, error=error) + hint)


def window_moment(text: str, now: datetime) -> datetime:
    """A point in time as --since and --until take it: a date or datetime (UTC unless it
    says otherwise), or a duration before ``now``: 30m, 1h, 2d, 2w, 6mo, 1y.

    >>> window_moment("1h", datetime(2026, 3, 1, tzinfo=UTC)).isoformat()
    '2026-02-28T23:00:00+00:00'
    """
    from record.retention import DurationError, parse_moment

    short = _SHORT_SPAN.match(text)
    if short:
        count, unit = int(short.group(1)), short.group(2)
        return now - (timedelta(minutes=count) if unit == "m" else timedelta(hours=count))
    try:
        return parse_moment(text, now)
    except DurationError as error:
        raise DurationError(NOT_A_MOMENT.format(text=text)) from error


def moment_option(text: str | None, option: str) -> datetime | None:
    """``window_moment`` of a flag's value, now; a bad value is that flag's error."""
    from record.retention import DurationError

    if text is None:
        return None
    try:
        return window_moment(text, datetime.now(UTC))
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint=option) from error


def export_format(output: Path, given: str | None) -> Literal["parquet", "csv"]:
    """The file format: ``--format`` if given, else the output's suffix; they must agree."""
    from record.export import FORMATS, format_of

    by_suffix = format_of(output)
    if given is None:
        if by_suffix is None:
            raise typer.BadParameter(UNKNOWN_SUFFIX.format(path=output), param_hint="--output")
        return by_suffix
    if given not in FORMATS:
        raise typer.BadParameter(UNKNOWN_FORMAT.format(format=given), param_hint="--format")
    if by_suffix is not None and by_suffix != given:
        raise typer.BadParameter(
            FORMAT_MISMATCH.format(path=output, suffix=output.suffix, format=given),
            param_hint="--format",
        )
    return "csv" if given == "csv" else "parquet"


@record.command(short_help="Check every hash chain; exit 1 if tampered.")
def verify() -> None:
    """Check the record's hash chains: exit 0 if intact, 1 listing every edited,
    deleted or inserted row."""
    from record.policy_store import PolicyStore
    from record.store import store_errors

    store = open_existing_record()
    try:
        report = store.verify()
        # The policy log (versions, promotions, rollbacks) lives in the same database.
        policies = PolicyStore(store)
        policy_problems, policy_entries = policies.verify(), len(policies.entries())
    except store_errors() as error:
        fail(f"cannot read the record: {error}")
    finally:
        store.close()
    if policy_problems:
        for problem in policy_problems:
            console.print(f"policy log: {problem}", markup=False, highlight=False)
    if report.ok and not policy_problems:
        console.print(f"ok: {report.rows:,} records in {report.writers:,} chains, intact; "
                      f"policy log: {policy_entries:,} entries, intact")  # fmt: skip
        return
    if report.ok:
        console.print(f"TAMPERED: the policy log ({len(policy_problems)} problems); "
                      f"{report.rows:,} records in {report.writers:,} chains, intact")  # fmt: skip
        raise typer.Exit(1)
    for problem in report.problems[:SHOWN_PROBLEMS]:
        console.print(str(problem), markup=False, highlight=False)
    if len(report.problems) > SHOWN_PROBLEMS:
        console.print(f"... and {len(report.problems) - SHOWN_PROBLEMS:,} more")
    console.print(
        f"TAMPERED: {len(report.problems):,} problems in {report.rows:,} records "
        f"({report.writers:,} chains)"
    )
    raise typer.Exit(1)


@record.command(short_help="Write records of a time range to Parquet or CSV.")
def export(
    output: Annotated[Path, typer.Option(help="File to write.")],
    since: Annotated[
        str | None,
        typer.Option(help="From: a date (2026-01-31) or a duration ago (30m, 1h, 30d)."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to, excluded (default: now).")] = None,
    format: Annotated[
        str | None, typer.Option(help="parquet or csv (default: from --output's suffix).")
    ] = None,
) -> None:
    """Write the records with SINCE <= time < UNTIL to OUTPUT (.parquet or .csv)."""
    from record.store import store_errors

    low, high = moment_option(since, "--since"), moment_option(until, "--until")
    chosen = export_format(output, format)
    store = open_existing_record()
    try:
        count = store.export(output, since=low, until=high, format=chosen)
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
    from record.retention import DurationError, parse_duration
    from record.store import store_errors

    try:
        span = parse_duration(older_than)
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint="--older-than") from error
    store = open_existing_record()
    try:
        removed = store.prune(span)
    except store_errors() as error:
        fail(f"cannot prune the record: {error}")
    finally:
        store.close()
    console.print(f"pruned {removed:,} records older than {older_than}")
