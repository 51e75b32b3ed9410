"""``fairgate policy recalibrate|diff|promote|rollback|list|auto``: online thresholds.

Versions live in the policy store, in the decision record's database (FAIRGATE_RECORD_URL,
as for ``fairgate serve``); the model and mode are the served ones (FAIRGATE_MODEL,
FAIRGATE_POLICY, or ``--model``/``--policy``). A promotion or rollback reaches every worker
of every replica on that database within FAIRGATE_POLICY_POLL seconds (default 1).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.errors import fail

if TYPE_CHECKING:  # imported inside the commands: `fairgate --help` stays free of bentoml
    from record.policy_desk import PolicyDesk

policy = typer.Typer(
    help="Online thresholds: recalibrate from the record's live decisions, replay a candidate "
    "in shadow, promote, roll back. Versions are kept in the record's database.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Model tag (default: FAIRGATE_MODEL, else latest).")
]
ModeOption = Annotated[
    str | None, typer.Option("--policy", help="Served policy mode (default: FAIRGATE_POLICY, lda).")
]
RecordOption = Annotated[
    str | None, typer.Option("--record", help="The record's URL (default: FAIRGATE_RECORD_URL).")
]
AuthorOption = Annotated[str | None, typer.Option(help="Who (default: user@host).")]
MaxMoveOption = Annotated[
    float | None,
    typer.Option(
        "--max-move",
        min=0.0,
        help="Largest cut-off move promoted without --force (default: "
        "FAIRGATE_POLICY_MAX_MOVE, else 0.10).",
    ),
]


def _desk(model: str | None, mode: str | None, record_url: str | None) -> PolicyDesk:
    from cli.record import open_existing_record
    from fairgate.artifacts import DEFAULT_MODEL, ArtifactError, load_serving_bundle
    from fairgate.policy import DEFAULT_POLICY_MODE, POLICY_MODES
    from record.policy_desk import PolicyDesk
    from record.policy_store import PolicyStore
    from record.store import store_errors

    tag = model or os.environ.get("FAIRGATE_MODEL") or DEFAULT_MODEL
    chosen = mode or os.environ.get("FAIRGATE_POLICY") or DEFAULT_POLICY_MODE
    if chosen not in POLICY_MODES:
        fail(f"--policy {chosen!r}: must be one of {', '.join(POLICY_MODES)}")
    try:
        bundle = load_serving_bundle(tag, chosen)
    except ArtifactError as error:
        fail(error)
    store = open_existing_record(record_url)
    try:
        return PolicyDesk(bundle, PolicyStore(store))
    except store_errors() as error:
        fail(f"cannot use the policy store: {error}")


def _max_move(given: float | None) -> float:
    from record.policy_desk import DEFAULT_MAX_MOVE, MAX_MOVE_VARIABLE

    if given is not None:
        return given
    text = os.environ.get(MAX_MOVE_VARIABLE, "").strip()
    try:
        value = float(text) if text else DEFAULT_MAX_MOVE
    except ValueError:
        value = -1.0
    if not value >= 0:
        fail(f"{MAX_MOVE_VARIABLE}={text!r}: expected a cut-off move, a number >= 0")
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def print_candidate(candidate: Any) -> None:
    found = candidate.recalibration
    target = found.target
    window = candidate.window
    if not candidate.changed:
        typer.echo(f"no change: the active version {candidate.version} already meets the target")
    else:
        typer.echo(f"candidate {candidate.version} (parent {candidate.parent})")
    typer.echo(
        f"from {window['decisions']:,} live decisions, {window['since']} to "
        f"{window['until']} (probes left out)"
    )
    if target.kind == "equal-rates":
        typer.echo(f"target: every group approved at the trained rate {_pct(target.approval_rate)}")
    else:
        typer.echo(
            f"target: one cut-off, approval rate {_pct(target.approval_rate)} +- "
            f"{target.band:.0%}, four-fifths ratio >= {target.floor:.2f}"
        )
    typer.echo(
        f"  {'group':16} {'decisions':>9}  cut-off before -> after [95%]        "
        "approval before -> after [95%]"
    )
    for g in found.groups.values():
        band = (
            ""
            if g.cut_interval is None
            else f"[{_num(g.cut_interval[0])}, {_num(g.cut_interval[1])}]"
        )
        rates = f"[{_pct(g.rate_interval[0])}, {_pct(g.rate_interval[1])}]"
        typer.echo(
            f"  {g.group:16} {g.decisions:>9,}  {_num(g.cut_before)} -> {_num(g.cut_after)} "
            f"{band:18}  {_pct(g.rate_before)} -> {_pct(g.rate_after)} {rates}"
        )
    interval = found.ratio_interval
    shown = "" if interval is None else f" [{_num(interval[0], 3)}, {_num(interval[1], 3)}]"
    typer.echo(
        f"four-fifths ratio {_num(found.ratio_before, 3)} -> {_num(found.ratio_after, 3)}"
        f"{shown}; approval rate {_pct(found.rate_before)} -> {_pct(found.rate_after)}"
    )
    for note in found.notes:
        typer.echo(f"note: {note}")
    if candidate.changed:
        typer.echo(
            f"next: fairgate policy diff {candidate.version}, then "
            f"fairgate policy promote {candidate.version}"
        )


def print_replay(version: str, shadow: Any, bound: float) -> None:
    typer.echo(
        f"shadow replay of {version} on {shadow.decisions:,} recorded live decisions: "
        f"{shadow.changed:,} would change"
    )
    typer.echo(
        f"  {'group':16} {'decisions':>9}  approval recorded -> candidate  "
        "deny->approve approve->deny  cut-off served -> candidate (move)"
    )
    for g in shadow.groups.values():
        typer.echo(
            f"  {g.group:16} {g.decisions:>9,}  {_pct(g.rate_before):>8} -> {_pct(g.rate_after):<9}"
            f"  {g.to_approve:>13,} {g.to_deny:>13,}  {_num(g.cut_before)} -> "
            f"{_num(g.cut_after)} ({g.move:+.4f})"
        )
    typer.echo(f"four-fifths ratio {_num(shadow.ratio_before, 3)} -> {_num(shadow.ratio_after, 3)}")
    move = shadow.largest_move
    if move > bound:
        typer.echo(
            f"largest cut-off move {move:.4f}: OVER the bound {bound:.4f}; "
            "promote needs --force and --reason"
        )
    else:
        typer.echo(f"largest cut-off move {move:.4f}: within the bound {bound:.4f}")


@policy.command(short_help="A candidate from the record's live decisions.")
def recalibrate(
    since: Annotated[
        str, typer.Option(help="Window start: a duration ago (30m, 1h, 2d) or a date.")
    ],
    until: Annotated[str | None, typer.Option(help="Window end, excluded (default: now).")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Write the candidate as JSON to stdout.")
    ] = False,
    min_decisions: Annotated[
        int, typer.Option(min=1, help="Fewer live decisions: the group's rule is kept.")
    ] = 200,
    reason: Annotated[str, typer.Option(help="Why (stored with the version).")] = "",
    author: AuthorOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Recalibrate the active policy from the window's live decisions (scores and groups;
    probes left out; no repayment needed) to the training-time target, store the candidate
    as a new version and print it. It decides nothing until promoted."""
    from cli.record import moment_option
    from fairgate.recalibrate import RecalibrationError

    low = moment_option(since, "--since")
    high = moment_option(until, "--until")
    assert low is not None
    desk = _desk(model, mode, record_url)
    try:
        candidate = desk.recalibrate(
            low, high, min_decisions=min_decisions, author=author, reason=reason
        )
    except RecalibrationError as error:
        fail(error)
    finally:
        desk.store.close()
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "version": candidate.version,
                    "parent": candidate.parent,
                    "changed": candidate.changed,
                    "scope": {"model_version": desk.scope.model_version, "mode": desk.scope.mode},
                    "window": candidate.window,
                    "expected": candidate.recalibration.expected_effect(),
                }
            )
        )
        return
    print_candidate(candidate)


@policy.command(short_help="Replay a version on recorded decisions (shadow).")
def diff(
    version: Annotated[str, typer.Argument(help="The candidate version (p-...).")],
    since: Annotated[
        str | None, typer.Option(help="Replay this window instead of the version's own.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON to stdout.")] = False,
    max_move: MaxMoveOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Decide the window's recorded live decisions again under VERSION: what would change,
    per group, approval rates and ratios before and after, and how far each cut-off moves."""
    from cli.record import moment_option
    from record.policy_store import PolicyStoreError

    bound = _max_move(max_move)
    desk = _desk(model, mode, record_url)
    try:
        shadow = desk.replay(version, moment_option(since, "--since"))
    except (PolicyStoreError, ValueError) as error:
        fail(error)
    finally:
        desk.store.close()
    if json_out:
        typer.echo(json.dumps({"version": version, "bound": bound, **shadow.as_dict()}))
        return
    print_replay(version, shadow, bound)


@policy.command(short_help="Make a version active on every replica.")
def promote(
    version: Annotated[str, typer.Argument(help="The version to serve (p-...).")],
    force: Annotated[
        bool, typer.Option(help="Promote a move over the bound (needs --reason).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (stored with the promotion).")] = "",
    max_move: MaxMoveOption = None,
    author: AuthorOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Promote VERSION: every worker of every replica on this record decides with it within
    FAIRGATE_POLICY_POLL seconds, without a restart. A cut-off move over the bound needs
    --force and --reason."""
    from record.policy_store import PolicyStoreError

    bound = _max_move(max_move)
    desk = _desk(model, mode, record_url)
    try:
        entry, _ = desk.promote(version, max_move=bound, force=force, author=author, reason=reason)
    except (PolicyStoreError, ValueError) as error:
        fail(error)
    finally:
        desk.store.close()
    typer.echo(f"promoted {entry.version} (was {entry.parent}) in {desk.scope}, by {entry.author}")


@policy.command(short_help="Return to the version active before.")
def rollback(
    reason: Annotated[str, typer.Option(help="Why (stored with the rollback).")] = "",
    author: AuthorOption = None,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Make the version active before the current one active again (every replica)."""
    from record.policy_store import PolicyStoreError

    desk = _desk(model, mode, record_url)
    try:
        entry = desk.rollback(author=author, reason=reason)
    except PolicyStoreError as error:
        fail(error)
    finally:
        desk.store.close()
    typer.echo(f"rolled back to {entry.version} (was {entry.parent}) in {desk.scope}")


@policy.command(name="list", short_help="Versions and changes, oldest first.")
def list_versions(
    json_out: Annotated[bool, typer.Option("--json", help="JSON to stdout.")] = False,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Every version and every promotion or rollback of the served model and mode, with the
    chain checked; the active version is marked."""
    desk = _desk(model, mode, record_url)
    try:
        entries = desk.entries()
        active = desk.store.active(desk.scope, desk.trained.version).version
        problems = desk.store.verify()
    finally:
        desk.store.close()
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "active": active,
                    "intact": not problems,
                    "problems": problems,
                    "entries": [e.as_dict() for e in entries],
                }
            )
        )
        return
    typer.echo(f"{desk.scope}: active {active}")
    for e in entries:
        mark = "*" if e.kind == "version" and e.version == active else " "
        what = f"{e.kind:8} {e.version}" + (f" (from {e.parent})" if e.parent else "")
        typer.echo(f"{mark} {e.seq:>4} {e.time}  {what}  {e.author}: {e.reason}")
    typer.echo("policy log intact" if not problems else "TAMPERED: " + "; ".join(problems))
    if problems:
        raise typer.Exit(1)


@policy.command(short_help="Recalibrate and promote on a schedule, within the bound.")
def auto(
    every: Annotated[str, typer.Option(help="How often: 15m, 1h.")] = "15m",
    since: Annotated[str, typer.Option(help="Window: the last 30m, 1h, ...")] = "1h",
    min_decisions: Annotated[int, typer.Option(min=1)] = 200,
    max_move: MaxMoveOption = None,
    once: Annotated[bool, typer.Option(help="One round, then exit.")] = False,
    model: ModelOption = None,
    mode: ModeOption = None,
    record_url: RecordOption = None,
) -> None:
    """Automatic mode (off unless started): each round recalibrates from the last window and
    promotes the candidate only if its shadow replay stays within the bound and it raises the
    four-fifths ratio; every automatic change is stored with its reason (author "auto")."""
    from cli.record import window_moment
    from record.policy_desk import auto_round
    from record.retention import DurationError

    bound = _max_move(max_move)
    try:
        period = (datetime.now(UTC) - window_moment(every, datetime.now(UTC))).total_seconds()
        window_moment(since, datetime.now(UTC))
    except DurationError as error:
        fail(error)
    from record.policy_store import PolicyStoreError
    from record.store import store_errors

    while True:
        try:
            desk = _desk(model, mode, record_url)  # says what is wrong, then exits
        except typer.Exit:
            if once:
                raise
            time.sleep(period)  # the database may be back by the next round
            continue
        try:
            line = auto_round(
                desk,
                window_moment(since, datetime.now(UTC)),
                min_decisions=min_decisions,
                max_move=bound,
            )
        except (*store_errors(), PolicyStoreError, ValueError) as error:
            # One bad round (the database away, someone else's change meanwhile) is said and
            # the schedule goes on; --once reports it as a failure.
            line = f"round failed: {error}"
            if once:
                fail(line)
        finally:
            desk.store.close()
        typer.echo(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}")
        if once:
            return
        time.sleep(period)
