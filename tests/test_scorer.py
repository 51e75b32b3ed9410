import numpy as np
import pytest

from fairgate.features import FeatureSpec
from fairgate.scorer import load_scorer, save_scorer
from training.compile_model import compile_model
from training.loan_book import synthetic_loan_book
from training.model import build_model


@pytest.fixture(scope="module")
def data():
    book = synthetic_loan_book(12_000, seed=11)
    spec = FeatureSpec(include_sensitive=True)
    return spec, spec.build(book.columns), book.label


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_compiled_scorer_equals_sklearn_on_holdout(data, kind, tmp_path):
    spec, features, labels = data
    model = build_model(kind, spec=spec, seed=0).fit(features[:8000], labels[:8000])
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
    model = build_model("gbm", spec=spec, seed=0).fit(features, labels)
    scorer = compile_model(model)
    book = synthetic_loan_book(200, seed=12)
    low = spec.build(book.columns)
    richer = dict(book.columns, annual_income=book.columns["annual_income"] * 1.5 + 1000)
    assert np.all(scorer.score(spec.build(richer)) >= scorer.score(low))
