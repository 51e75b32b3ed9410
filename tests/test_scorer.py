import re

import numpy as np
import pytest
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier

from fairgate import scorer as scorer_module
from fairgate import tree_table
from fairgate.schema import synthetic_features
from fairgate.scorer import TreeScorer, load_scorer, save_scorer
from fairgate.tree_table import TOO_MANY_LEAVES, leaf_masks
from training.compile_model import compile_model
from training.loan_book import synthetic_loan_book
from training.model import build_model


@pytest.fixture(scope="module")
def data():
    book = synthetic_loan_book(12_000, seed=11)
    spec = synthetic_features(include_sensitive=True)
    return spec, spec.build(book.columns), book.label


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_compiled_scorer_equals_sklearn_on_holdout(data, kind, tmp_path):
    spec, features, labels = data
    model = build_model(kind, monotonic=spec.monotonic_constraints, seed=0).fit(
        features[:8000], labels[:8000]
    )
    holdout = features[8000:]
    expected = model.predict_proba(holdout)[:, 1]
    scorer = compile_model(model)
    np.testing.assert_allclose(scorer.score(holdout), expected, rtol=0, atol=1e-12)
    # Same decisions at the 0.5 cut (ties: both use score > 0.5).
    np.testing.assert_array_equal(scorer.score(holdout) > 0.5, model.predict(holdout) == 1)
    # A row scores the same alone as in any batch (decisions must not depend on company).
    singles = np.concatenate([scorer.score(holdout[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(singles, scorer.score(holdout)[:300])
    save_scorer(scorer, tmp_path / "scorer.npz")
    reloaded = load_scorer(tmp_path / "scorer.npz")
    np.testing.assert_array_equal(reloaded.score(holdout), scorer.score(holdout))


def test_gbm_is_monotone_in_income(data):
    spec, features, labels = data
    model = build_model("gbm", monotonic=spec.monotonic_constraints, seed=0).fit(features, labels)
    scorer = compile_model(model)
    book = synthetic_loan_book(200, seed=12)
    low = spec.build(book.columns)
    richer = dict(book.columns, annual_income=book.columns["annual_income"] * 1.5 + 1000)
    assert np.all(scorer.score(spec.build(richer)) >= scorer.score(low))


def _gbm(spec, leaves: int) -> HistGradientBoostingClassifier:
    if leaves == 31:  # what training builds (uint32 leaf sets)
        return build_model("gbm", monotonic=spec.monotonic_constraints, seed=0)
    # Up to 64 leaves per tree: the uint64 leaf sets.
    return HistGradientBoostingClassifier(max_iter=30, max_depth=6, max_leaf_nodes=leaves,
                                          random_state=0)  # fmt: skip


@pytest.mark.parametrize("leaves", [31, 64])
def test_tree_occlusion_scores_each_block_set_to_the_reference(data, leaves):
    """The reasons' occlusion gives, bit for bit, the scores of the occluded rows built by
    hand, and those are scikit-learn's own within 1e-12."""
    spec, features, labels = data
    model = _gbm(spec, leaves).fit(features[:8000], labels[:8000])
    counts = [int(p.nodes["is_leaf"].sum()) for (p,) in model._predictors]
    assert (max(counts) > 32) == (leaves > 32)
    scorer = compile_model(model)
    holdout = features[8000:]
    expected = model.predict_proba(holdout)[:, 1]
    np.testing.assert_allclose(scorer.score(holdout), expected, rtol=0, atol=1e-12)
    rows = features[8000:8300].copy()
    rows[5, 0] = np.nan  # a missing value goes the way its split learnt, as in scikit-learn
    rng = np.random.default_rng(4)
    width = features.shape[1]
    # Blocks as the explainer makes them (one or a few columns each, some columns in no
    # block), plus an empty one and one of every column.
    blocks = np.zeros((7, width), dtype=bool)
    shuffled = rng.permutation(width)
    for j, columns in enumerate(np.array_split(shuffled[: width - 3], 5)):
        blocks[j, columns] = True
    blocks[6] = True
    reference = np.median(features[:8000], axis=0)
    occlusion = scorer.occlusion(reference, blocks)
    occluded = np.where(blocks[None, :, :], reference, rows[:, None, :])  # (rows, k, width)
    by_hand = scorer.score(occluded.reshape(-1, width)).reshape(len(rows), len(blocks))
    np.testing.assert_array_equal(occlusion.scores(rows), by_hand)
    np.testing.assert_array_equal(occlusion.scores(rows[7:8]), by_hand[7:8])  # one row alone
    sklearn = model.predict_proba(occluded.reshape(-1, width))[:, 1]
    np.testing.assert_array_equal(by_hand.ravel(), sklearn)
    # The empty block changes nothing; the block of every column scores the reference.
    np.testing.assert_array_equal(occlusion.scores(rows)[:, 5], scorer.score(rows))
    np.testing.assert_array_equal(occlusion.scores(rows)[:, 6], scorer.score(reference[None, :])[0])


def test_missing_values_go_the_way_each_split_learnt(tmp_path):
    # scikit-learn sends a missing value to the child that saw more samples when training had
    # none (here left: 80 zeros against 20 ones), and the learnt way when it had some.
    x = np.r_[np.zeros(80), np.ones(20)][:, None]
    model = HistGradientBoostingClassifier(max_iter=1).fit(x, x[:, 0].astype(int))
    rows = np.array([[0.0], [1.0], [np.nan]])
    np.testing.assert_array_equal(compile_model(model).score(rows), model.predict_proba(rows)[:, 1])
    rng = np.random.default_rng(7)
    features = rng.normal(size=(3000, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    features[rng.random(features.shape) < 0.2] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(features, labels)
    scorer = compile_model(model)
    np.testing.assert_array_equal(scorer.score(features), model.predict_proba(features)[:, 1])
    # Saved and loaded, the directions are kept.
    save_scorer(scorer, tmp_path / "scorer.npz")
    reloaded = load_scorer(tmp_path / "scorer.npz")
    np.testing.assert_array_equal(reloaded.score(features), scorer.score(features))
    # An artifact saved before the direction was kept still loads, and decides as it did:
    # NaN goes right at every split (a plain walk: NaN <= t is False).
    older = {k: v for k, v in scorer.arrays().items() if k != "missing_left"}
    walked = expit([_walk(older, row)[0] for row in features[:300]])
    np.testing.assert_array_equal(TreeScorer(**older).score(features[:300]), walked)


# scikit-learn's binning subtracts infinities while fitting (its warning, expected here).
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_book_with_infinities_scores_like_scikit_learn():
    # Infinite values can make scikit-learn learn a NaN threshold (every number goes right);
    # it is no cut of the column's bins, and the column's other splits stay exact.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 4))
    labels = (features[:, 0] + rng.normal(size=2000) > 0).astype(int)
    features[rng.random(features.shape) < 0.05] = np.inf
    features[rng.random(features.shape) < 0.05] = -np.inf
    missing = rng.random(features.shape) < 0.1
    features[missing] = np.nan
    labels[missing[:, 1]] = 1
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(features, labels)
    scorer = compile_model(model)
    assert np.isnan(scorer.threshold[scorer.left != np.arange(len(scorer.left))]).any()
    rows = np.r_[features[:500], rng.normal(size=(500, 4))]
    np.testing.assert_array_equal(scorer.score(rows), model.predict_proba(rows)[:, 1])


def test_large_batches_are_scored_and_occluded_in_chunks_alike(data, monkeypatch):
    spec, features, labels = data
    model = build_model("gbm", monotonic=spec.monotonic_constraints, seed=0)
    arrays = compile_model(model.fit(features[:4000], labels[:4000])).arrays()
    rows = features[4000:4100].copy()
    rows[::7, 2] = np.nan
    reference = np.median(features[:4000], axis=0)
    blocks = np.eye(features.shape[1], dtype=bool)[:5]
    whole = TreeScorer(**arrays)
    monkeypatch.setattr(tree_table, "CHUNK_BYTES", 1)  # one row per chunk
    monkeypatch.setattr(scorer_module, "CHUNK_BYTES", 1)
    chunked = TreeScorer(**arrays)
    assert chunked._table.chunk_rows == 1
    np.testing.assert_array_equal(chunked.score(rows), whole.score(rows))
    np.testing.assert_array_equal(chunked.occlusion(reference, blocks).scores(rows),
                                  whole.occlusion(reference, blocks).scores(rows))  # fmt: skip
    # No block at all: nothing to occlude.
    assert chunked.occlusion(reference, blocks[:0]).scores(rows).shape == (len(rows), 0)


def test_a_model_that_never_split_scores_its_baseline():
    labels = np.r_[np.zeros(150, dtype=int), np.ones(50, dtype=int)]
    model = HistGradientBoostingClassifier(max_iter=5).fit(np.ones((200, 3)), labels)
    scorer = compile_model(model)
    rows = np.array([[1.0, 1.0, 1.0], [0.0, np.nan, 5.0]])
    np.testing.assert_array_equal(scorer.score(rows), model.predict_proba(rows)[:, 1])
    occlusion = scorer.occlusion(np.ones(3), np.eye(3, dtype=bool))
    unchanged = np.repeat(scorer.score(rows)[:, None], 3, axis=1)
    np.testing.assert_array_equal(occlusion.scores(rows), unchanged)


def _walk(arrays: dict, row: np.ndarray) -> tuple[float, list[int]]:
    """A plain Python walk: the raw score (baseline, then each tree's leaf in order) and the
    leaves reached."""
    total, reached = float(arrays["baseline"][0]), []
    for node in arrays["roots"].tolist():
        while arrays["left"][node] != node:
            goes_left = row[arrays["feature"][node]] <= arrays["threshold"][node]
            node = arrays["left"][node] if goes_left else arrays["right"][node]
        total += arrays["value"][node]
        reached.append(node)
    return total, reached


@pytest.mark.parametrize("depth", [5, 6])  # 32 leaves (uint32 sets), 64 (uint64)
def test_complete_trees_reach_every_leaf_the_last_included(depth):
    """Hand-built complete trees, two of them: every leaf, the one on the sets' top bit
    included, scores as a plain walk does."""
    rng = np.random.default_rng(depth)
    internal, leaves = 2**depth - 1, 2**depth
    size = internal + leaves
    own = np.arange(size)
    # Node i splits into 2i + 1 (left) and 2i + 2; level d reads column d at 0.5, so each of
    # the 2**depth leaves is one pattern of the row's columns.
    level = np.floor(np.log2(own + 1)).astype(np.intp)
    left = np.where(own < internal, 2 * own + 1, own)
    right = np.where(own < internal, 2 * own + 2, own)
    arrays = {
        "feature": np.tile(np.where(own < internal, level, 0), 2),
        "threshold": np.tile(np.where(own < internal, 0.5, np.inf), 2),
        "left": np.r_[left, left + size],
        "right": np.r_[right, right + size],
        "value": rng.normal(size=2 * size),
        "roots": np.array([0, size]),
        "baseline": np.array([0.25]),
        "depth": np.array([depth]),
    }
    scorer = TreeScorer(**arrays)
    rows = (rng.random((4000, depth)) > 0.5).astype(float)
    walked = [_walk(arrays, row) for row in rows]
    assert len({tuple(reached) for _, reached in walked}) == leaves  # every leaf reached
    expected = expit(np.array([total for total, _ in walked]))
    np.testing.assert_array_equal(scorer.score(rows), expected)


def test_leaf_masks_clear_the_left_subtree_and_rank_leaves_left_to_right():
    # Node 0 splits into 1 (a leaf) and 2; node 2 splits into leaves 3 and 4. Leaves point
    # to themselves. Left to right the leaves are 1, 3, 4: ranks 0, 1, 2.
    left = np.array([1, 1, 3, 3, 4])
    right = np.array([2, 1, 4, 3, 4])
    masks, rank = leaf_masks(left, right, np.array([0]))
    assert rank.tolist() == [-1, 0, -1, 1, 2]
    assert int(masks[0]) == 2**64 - 1 - 0b001  # going right at 0 rules out leaf rank 0
    assert int(masks[2]) == 2**64 - 1 - 0b010  # going right at 2 rules out leaf rank 1
    assert int(masks[1]) == int(masks[3]) == int(masks[4]) == 2**64 - 1


def test_a_tree_of_more_than_64_leaves_is_refused():
    # A chain: node i < 64 splits into leaf 100 + i (left) and i + 1 (right); node 64 is a leaf.
    left = np.arange(200)
    right = np.arange(200)
    left[:64] = 100 + np.arange(64)
    right[:64] = np.arange(1, 65)
    with pytest.raises(ValueError, match=re.escape(TOO_MANY_LEAVES)):
        leaf_masks(left, right, np.array([0]))


# What a BentoML worker does (``_bentoml_impl.worker.service.main``): load the service with
# ``_bentoml_impl.loader.load(..., standalone_load=True)``, build ``to_asgi(is_main=True)``;
# the lifespan start-up then creates the service instance. One decision is made, then the
# training libraries still loaded are printed.
_WORKER_IMPORTS = """
import json, sys
from _bentoml_impl.loader import load
from starlette.testclient import TestClient
app = load("service.service:DecisionService", standalone_load=True).to_asgi(is_main=True)
with TestClient(app) as client:
    body = client.post("/decide", json=json.loads(sys.argv[1]))
    assert body.status_code == 200, body.text
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))))
"""


def test_a_serving_worker_imports_no_training_library(trained):
    import json
    import os
    import subprocess
    import sys

    from fairgate.schema import Applicant
    from service.launch import REPO

    example = json.dumps(Applicant.model_json_schema()["example"])
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_IMPORTS, example, "sklearn,pandas,fairlearn,joblib"],
        cwd=REPO, env=os.environ | {"FAIRGATE_MODEL": trained.tag}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
