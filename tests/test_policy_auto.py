"""Automatic mode, one round at a time (``fairgate policy auto --once`` runs ``auto_round``):
it promotes only a candidate whose shadow replay stays within the bound and raises the
four-fifths ratio, and stores every automatic change with its reason."""

from datetime import UTC, datetime, timedelta

import pytest

from fairgate.artifacts import load_serving_bundle
from loadtests.bench_policy import fill_record
from record import open_record
from record.policy_desk import PolicyDesk, auto_round
from record.policy_store import PolicyStore

HOUR_AGO = timedelta(hours=1)


@pytest.fixture
def desk(trained, tmp_path):
    """The session's model served as ``mitigated`` over a record of 5,000 live decisions in
    which women score lower than men (a drift the trained thresholds do not match)."""
    bundle = load_serving_bundle(trained.tag, "mitigated")
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")
    fill_record(store, bundle, 5000, seed=3)
    opened = PolicyDesk(bundle, PolicyStore(store))
    yield opened
    opened.store.close()


def activations(desk):
    return [e for e in desk.entries() if e.kind != "version"]


def test_a_candidate_within_the_bound_is_promoted_with_its_reason(desk):
    said = auto_round(desk, datetime.now(UTC) - HOUR_AGO, min_decisions=200, max_move=1.0)
    assert said.startswith("promoted p-")
    (promotion,) = activations(desk)
    assert promotion.author == "auto" and promotion.reason.startswith("automatic: four-fifths")
    active = desk.active()
    assert active.version == promotion.version != desk.trained.version
    # The next round finds the target met: nothing more changes.
    again = auto_round(desk, datetime.now(UTC) - HOUR_AGO, min_decisions=200, max_move=1.0)
    assert again.startswith("no change") and len(activations(desk)) == 1


def test_a_move_over_the_bound_is_not_promoted(desk):
    said = auto_round(desk, datetime.now(UTC) - HOUR_AGO, min_decisions=200, max_move=1e-6)
    assert said.startswith("not promoted:") and "over the bound" in said
    assert activations(desk) == []
    assert desk.active().version == desk.trained.version
    # The candidate is stored (a reviewer can diff and promote it by hand), never activated.
    assert [e.author for e in desk.entries() if e.kind == "version"] == ["training", "auto"]


def test_too_few_decisions_change_nothing(desk):
    said = auto_round(desk, datetime.now(UTC) - HOUR_AGO, min_decisions=10_000, max_move=1.0)
    assert said.startswith("no change:") and "10,000 live decisions" in said
    assert activations(desk) == []
