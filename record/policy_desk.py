"""One scope's online policy work: recalibrate, replay, promote, roll back, one automatic
round. ``fairgate policy`` (cli/policy.py) prints what it returns; the benchmarks and tests
call it directly.

The scope is a served bundle's: its model's concrete tag and its policy mode (the CLI takes
them from the environment ``fairgate serve`` reads, or its flags).
The trained policy is stored as the scope's first version the first time it is needed, so the
history starts where the model did and a rollback can return to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fairgate.artifacts import ServingBundle
from fairgate.policy import ThresholdPolicy
from fairgate.recalibrate import (
    MIN_DECISIONS,
    Recalibration,
    RecalibrationError,
    Window,
    recalibrate,
    trained_target,
)
from fairgate.replay import Replay, replay
from record.policy_store import PolicyEntry, PolicyStore, Scope
from record.policy_window import read_window

# The largest cut-off move (in score units) promoted without --force and a reason.
DEFAULT_MAX_MOVE: Final[float] = 0.10
MAX_MOVE_VARIABLE: Final[str] = "FAIRGATE_POLICY_MAX_MOVE"
OVER_BOUND: Final[str] = (
    "{version} moves a cut-off by {move:.4f}, more than the bound {bound:.4f} "
    "({variable} or --max-move): promote it with --force and --reason"
)
TRAINED_REASON: Final[str] = "the policy the model was trained with"


@dataclass(frozen=True)
class Candidate:
    """A recalibration and where it went: stored as ``version`` (or the active one, unchanged)."""

    version: str
    parent: str
    changed: bool
    recalibration: Recalibration
    window: dict[str, Any]


class PolicyDesk:
    """One scope's policies: the trained one, the store's versions, the record's window."""

    def __init__(self, bundle: ServingBundle, store: PolicyStore) -> None:
        self.bundle = bundle
        self.store = store
        self.trained = bundle.policy
        self.scope = Scope(bundle.tag, bundle.policy.mode)
        self.store.add_version(
            self.scope,
            self.trained.version,
            parent="",
            body={"policy": self.trained.to_dict(), "source": "training"},
            author="training",
            reason=TRAINED_REASON,
        )

    def policy(self, version: str) -> ThresholdPolicy:
        """A stored version's policy (its content hash checked)."""
        if version == self.trained.version:
            return self.trained
        return ThresholdPolicy.from_dict(
            self.store.version(self.scope, version).body_data()["policy"]
        )

    def active(self) -> ThresholdPolicy:
        return self.policy(self.store.active(self.scope, self.trained.version).version)

    def entries(self) -> list[PolicyEntry]:
        return self.store.entries(self.scope)

    def window(self, since: datetime, until: datetime) -> Window:
        versions = sorted({e.version for e in self.entries() if e.kind == "version"})
        return read_window(
            self.store.store,
            since=since,
            until=until,
            model_version=self.scope.model_version,
            policy_versions=versions,
            groups=list(self.trained.rules),
            draws=self.scope.mode == "randomized",
        )

    def recalibrate(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        min_decisions: int = MIN_DECISIONS,
        author: str | None = None,
        reason: str = "",
    ) -> Candidate:
        """Recalibrate from the window's live decisions; store the candidate unless it is the
        active version already."""
        until = until or datetime.now(UTC)
        active = self.active()
        window = self.window(since, until)
        found = recalibrate(
            active,
            window,
            trained_target(self.bundle.metadata, active.mode),
            min_decisions=min_decisions,
        )
        span = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "decisions": len(window),
            "min_decisions": min_decisions,
        }
        if found.policy.version == active.version:
            return Candidate(active.version, active.version, False, found, span)
        effect = found.expected_effect()
        text = reason or (
            f"recalibrated from {len(window):,} live decisions: four-fifths ratio "
            f"{_shown(found.ratio_before)} -> {_shown(found.ratio_after)}"
        )
        entry = self.store.add_version(
            self.scope,
            found.policy.version,
            parent=active.version,
            body={"policy": found.policy.to_dict(), "window": span, "expected": effect},
            author=author,
            reason=text,
        )
        # The same rules may be stored already (an earlier window gave them): that entry,
        # its parent and window are what diff and promote use, so they are what is reported.
        stored = entry.body_data().get("window", span)
        return Candidate(entry.version, entry.parent, True, found, stored)

    def replay(self, version: str, since: datetime | None = None) -> Replay:
        """The version's window (or one from ``since``) replayed under it, against the
        decisions recorded then."""
        body = self.store.version(self.scope, version).body_data()
        stored = body.get("window")
        if since is None and stored is None:
            raise ValueError(f"{version} has no window of its own: give --since")
        low = since or datetime.fromisoformat(stored["since"])
        high = datetime.now(UTC) if since is not None else datetime.fromisoformat(stored["until"])
        least = (stored or {}).get("min_decisions", MIN_DECISIONS)
        return replay(
            self.active(), self.policy(version), self.window(low, high), min_decisions=least
        )

    def promote(
        self,
        version: str,
        *,
        max_move: float,
        force: bool,
        author: str | None,
        reason: str,
    ) -> tuple[PolicyEntry, Replay | None]:
        """Make ``version`` active; a move over ``max_move`` needs ``force`` and a reason
        (``ValueError`` otherwise)."""
        self.store.version(self.scope, version)  # an unknown version is refused first
        shadow = None
        if version != self.trained.version:
            shadow = self.replay(version) if self._has_window(version) else None
            if shadow is not None and shadow.largest_move > max_move and not (force and reason):
                raise ValueError(
                    OVER_BOUND.format(
                        version=version,
                        move=shadow.largest_move,
                        bound=max_move,
                        variable=MAX_MOVE_VARIABLE,
                    )
                )
        entry = self.store.promote(
            self.scope, version, trained=self.trained.version, author=author, reason=reason
        )
        return entry, shadow

    def rollback(self, *, author: str | None, reason: str) -> PolicyEntry:
        return self.store.rollback(
            self.scope, trained=self.trained.version, author=author, reason=reason
        )

    def _has_window(self, version: str) -> bool:
        return "window" in self.store.version(self.scope, version).body_data()


def _shown(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"  # NaN: fewer than two groups judged


def auto_round(desk: PolicyDesk, since: datetime, *, min_decisions: int, max_move: float) -> str:
    """One automatic round: recalibrate, replay, promote only within the bound and only if
    the four-fifths ratio rises; returns what happened, in one line."""
    try:
        candidate = desk.recalibrate(since, min_decisions=min_decisions, author="auto")
    except RecalibrationError as error:
        return f"no change: {error}"
    if not candidate.changed:
        return f"no change: {candidate.version} already meets the target"
    shadow = desk.replay(candidate.version)
    if shadow.largest_move > max_move:
        return (
            f"not promoted: {candidate.version} moves a cut-off by "
            f"{shadow.largest_move:.4f}, over the bound {max_move:.4f}"
        )
    if not shadow.ratio_after > shadow.ratio_before:
        return (
            f"not promoted: {candidate.version} does not raise the four-fifths ratio "
            f"({_shown(shadow.ratio_before)} -> {_shown(shadow.ratio_after)})"
        )
    reason = (
        f"automatic: four-fifths ratio {_shown(shadow.ratio_before)} -> "
        f"{_shown(shadow.ratio_after)} on {shadow.decisions:,} live decisions, largest cut-off "
        f"move {shadow.largest_move:.4f} within {max_move:.4f}"
    )
    desk.promote(candidate.version, max_move=max_move, force=False, author="auto", reason=reason)
    return f"promoted {candidate.version}: {reason}"
