"""The less discriminatory alternative as served: blind through the decision path, stored
beside the other modes, and measured from outside on applicants it never saw.

Oracles are independent of the service: the unseen population's groups come from the frozen
pre-contract schema (``tests/synthetic_oracle.py``), its labels and repayments from the
synthetic book itself, and every ratio is counted here with numpy from the API's answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fairgate.artifacts import (
    LDA_FILES,
    NO_LDA,
    ArtifactError,
    load_serving_bundle,
)
from fairgate.decider import Decider
from fairgate.generator import generate_applicants, to_records
from fairgate.schema import Applicant
from service.launch import REPO
from tests.conftest import LiveService
from tests.synthetic_oracle import AGE_BAND_REPRESENTATIVE, GENDERS, group_keys
from tests.test_contract_missing import TEXT
from training.lda_figures import Figures
from training.lda_stage import LDA_NEEDS_FILLS
from training.loan_book import BiasConfig, synthetic_loan_book
from training.pipeline import TrainConfig, TrainResult, run_training

FIGURES_KEYS = set(Figures("x", 0.0, 0.0, 0.0, {}).to_dict())
TRAIN_ROWS = 40_000
TRAIN_SEED = 42
UNSEEN_ROWS = 40_000
UNSEEN_SEED = 4242  # another book: neither its rows nor its draws took part in training
BATCH = 1000


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


# -- what training stores -------------------------------------------------------------


def test_metrics_carry_the_search_in_the_shape_the_report_reads(trained):
    lda = trained.metrics["lda"]
    assert set(lda) == {"selection", "candidates", "test", "policies", "seconds"}
    assert lda["seconds"] > 0
    names = [c["name"] for c in lda["candidates"]]
    assert names[0] == "baseline@0.5000" and len(set(names)) == len(names) > 50
    assert all(set(c) == FIGURES_KEYS for c in lda["candidates"])
    assert lda["selection"]["chosen"] in names
    assert lda["selection"]["outcome"] in ("discovery", "refutation within the searched family")
    assert set(lda["test"]) == {"baseline", "chosen"}
    assert lda["test"]["chosen"]["name"] == lda["selection"]["chosen"]
    assert list(lda["policies"]) == ["unmitigated", "mitigated", "randomized"]
    for figures in (*lda["test"].values(), *lda["policies"].values()):
        assert set(figures) == FIGURES_KEYS
        # Every audited attribute alone (the policy attribute is one of them here).
        assert set(figures["ratios"]) == {"gender", "age_band"}
        assert figures["accuracy_repaid"] is not None  # the synthetic book has `repaid`
    assert lda["policies"]["mitigated"]["threshold"] is None
    assert lda["policies"]["unmitigated"]["threshold"] == 0.5


def test_the_test_split_figures_are_the_chosen_scorer_on_the_test_rows(trained):
    # Recomputed here from the stored scorer and the book's own test rows and groups.
    bundle = load_serving_bundle(trained.tag, "lda")
    rows = trained.split.test
    columns = {k: v[rows] for k, v in trained.book.columns.items()}
    approved = bundle.scorer.score(bundle.features.build(columns)) > bundle.policy.unseen.threshold0
    chosen = trained.metrics["lda"]["test"]["chosen"]
    assert chosen["approval_rate"] == pytest.approx(approved.mean(), abs=1e-12)
    assert chosen["agreement"] == pytest.approx(
        np.mean(approved == trained.book.label[rows]), abs=1e-12
    )
    assert chosen["accuracy_repaid"] == pytest.approx(
        np.mean(approved == trained.book.repaid[rows]), abs=1e-12
    )
    women = group_keys(columns, ("gender",)) == "female"
    rates = approved[women].mean(), approved[~women].mean()
    assert chosen["ratios"]["gender"] == pytest.approx(min(rates) / max(rates), abs=1e-12)


def test_every_mode_reports_accuracy_against_repayment_as_sandbox_only(trained):
    rows = trained.split.test
    repaid = trained.book.repaid[rows]
    scores = trained.scorer.score(trained.features[rows])
    baseline = trained.metrics["baseline"]["overall"]["sandbox"]["accuracy_repaid"]
    assert baseline == pytest.approx(np.mean((scores > 0.5) == repaid), abs=1e-12)
    groups = group_keys({k: v[rows] for k, v in trained.book.columns.items()}, ("gender",))
    approved = trained.policy.decide(scores, groups)[0]
    mitigated = trained.metrics["mitigated"]["overall"]["sandbox"]["accuracy_repaid"]
    assert mitigated == pytest.approx(np.mean(approved == repaid), abs=1e-12)
    assert 0 < trained.metrics["randomized"]["overall"]["sandbox"]["accuracy_repaid"] < 1


def test_a_real_book_has_no_sandbox_figures(german_trained):
    metrics = german_trained.metrics
    for label in ("baseline", "mitigated", "randomized"):
        assert "sandbox" not in metrics[label]["overall"]
    lda = metrics["lda"]
    assert all(c["accuracy_repaid"] is None for c in lda["candidates"])
    assert lda["test"]["chosen"]["accuracy_repaid"] is None
    # The German book's LDA serves like any other: its own blind features, one cut-off.
    bundle = load_serving_bundle(german_trained.tag, "lda")
    assert not bundle.features.include_sensitive
    assert {r.threshold0 for r in (*bundle.policy.rules.values(), bundle.policy.unseen)} == {
        lda["test"]["chosen"]["threshold"]
    }


def test_the_lda_bundle_is_blind_one_threshold_and_stored_with_checksums(trained):
    import bentoml

    recorded = bentoml.models.get(trained.tag).info.metadata["checksums"]
    assert set(LDA_FILES) <= set(recorded)
    bundle = load_serving_bundle(trained.tag, "lda")
    chosen = trained.lda.chosen
    assert bundle.policy.mode == "lda" and not bundle.policy.randomized
    rules = [*bundle.policy.rules.values(), bundle.policy.unseen]
    assert {(r.p0, r.operator0, r.threshold0, r.p1) for r in rules} == {
        (1.0, ">", chosen.threshold, 0.0)
    }
    assert list(bundle.policy.rules) == list(trained.policy.rules)  # named like the others
    # The session model is the naive one (gender and age are its features); the LDA is not.
    assert trained.config.include_sensitive
    assert not bundle.features.include_sensitive
    assert bundle.metadata["include_sensitive"] is False
    assert bundle.metadata["main_model"]["include_sensitive"] is True
    assert not {"is_female", "age"} & set(bundle.features.names)
    summary = bundle.metadata["lda"]
    assert summary["chosen"]["name"] == trained.metrics["lda"]["selection"]["chosen"]
    assert summary["chosen"]["threshold"] == chosen.threshold
    assert summary["chosen"]["dropped"] == list(chosen.dropped)
    # Trained the same way twice, the policy is the same file.
    again = json.loads((Path(bentoml.models.get(trained.tag).path) / "lda_policy.json").read_text())
    assert again == trained.lda.policy.to_dict()


def test_get_policy_shows_the_lda_summary(client, trained):
    body = client.get("/policy").json()
    assert body["policy_mode"] == "lda"  # the default
    summary = body["training"]["lda"]
    assert summary["outcome"] == trained.lda.selection.outcome
    assert summary["summary"] == trained.lda.selection.summary
    assert summary["chosen"]["name"] == trained.lda.chosen.name
    assert summary["chosen"]["threshold"] == trained.lda.chosen.threshold
    assert summary["chosen"]["dropped"] == list(trained.lda.chosen.dropped)
    assert body["training"]["include_sensitive"] is False


# -- blind by construction, through the served decision path ------------------------


def _variants(records: list[dict]) -> list[list[dict]]:
    """The same applicants with only the protected fields changed: gender to every value
    the request allows, age to each band's representative age."""
    return [
        [r | {"gender": gender, "age": age} for r in records]
        for gender, age in product(GENDERS, AGE_BAND_REPRESENTATIVE.values())
    ]


def _bits(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def test_protected_fields_change_no_score_and_no_decision(trained):
    decider = Decider(load_serving_bundle(trained.tag, "lda"))
    records = to_records(generate_applicants(400, seed=5))
    original = decider.decide([Applicant.model_validate(r) for r in records])
    variants = _variants(records)
    assert len(variants) == len(GENDERS) * len(AGE_BAND_REPRESENTATIVE)
    for variant in variants:
        decided = decider.decide([Applicant.model_validate(r) for r in variant])
        assert _bits(decided.score) == _bits(original.score)
        assert decided.approved.tolist() == original.approved.tolist()
        assert _bits(decided.probability) == _bits(original.probability)
        for row in range(0, len(records), 97):  # one applicant at a time: the single path
            single = decider.decide([Applicant.model_validate(variant[row])])
            assert _bits(single.score) == _bits(original.score[row : row + 1])
            assert bool(single.approved[0]) == bool(original.approved[row])
    # The groups did change, so the check above could fail: the naive model's own scores do
    # move with the same changes.
    groups = {tuple(decider.decide([Applicant.model_validate(v[0])]).group) for v in variants}
    assert len(groups) == len(GENDERS)
    naive = Decider(load_serving_bundle(trained.tag, "unmitigated"))
    naive_scores = [
        _bits(naive.decide([Applicant.model_validate(r) for r in v]).score) for v in variants
    ]
    assert len(set(naive_scores)) > 1


# -- a model without the search ------------------------------------------------------


def test_a_thresholds_model_serves_mitigated_and_refuses_lda(tmp_path):
    name = "thresholds-only"
    result = _cli("train", "--rows", "5000", "--seed", "3", "--bootstrap", "0", "--mitigation",
                  "thresholds", "--reports", str(tmp_path), "--name", name)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "less discriminatory alternative" not in result.stdout
    tag = result.stdout.split("saved ", 1)[1].split()[0]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "lda" not in metrics and metrics["config"]["mitigation"] == "thresholds"

    bundle = load_serving_bundle(tag, "mitigated")
    assert bundle.policy.mode == "mitigated" and bundle.metadata["lda"] is None
    decided = Decider(bundle).decide(
        [Applicant.model_validate(r) for r in to_records(generate_applicants(20, seed=1))]
    )
    assert len(decided.approved) == 20
    with pytest.raises(ArtifactError) as caught:
        load_serving_bundle(tag, "lda")
    assert str(caught.value) == NO_LDA.format(tag=tag, files=", ".join(LDA_FILES))
    # `fairgate serve` checks before starting anything: one line, exit 2, the same message.
    refused = _cli("serve", "--model", tag, "--policy", "lda", "--port", "1")
    said = " ".join((refused.stderr + refused.stdout).split())  # as rich wrapped it, unwrapped
    assert refused.returncode == 2, said
    assert "trained with --mitigation thresholds" in said
    assert "FAIRGATE_POLICY=mitigated" in said


def test_a_number_the_model_takes_missing_needs_thresholds_or_a_fill(tmp_path):
    # gbm takes a missing number as it is (missing = "model"); the LDA, a logistic model,
    # cannot: refused before any fit, with both ways out named.
    rng = np.random.default_rng(0)
    n = 600
    income = rng.uniform(0, 1000, n)
    frame = {
        "rid": [f"R{i}" for i in range(n)],
        "income": np.where(rng.random(n) < 0.1, np.nan, income),
        "children": rng.integers(0, 4, n),
        "home": rng.choice(["own", "rent", "other"], n),
        "age": rng.integers(18, 90, n),
        "black": rng.integers(0, 2, n),
        "y": (income + rng.normal(0, 200, n) > 500).astype(int),
    }
    book = tmp_path / "gaps.csv"
    pd.DataFrame(frame).to_csv(book, index=False)
    contract = tmp_path / "gaps.toml"
    contract.write_text(TEXT.replace('missing = "median"', 'missing = "model"'))
    config = TrainConfig(data=book, contract=contract, model="gbm", bootstrap=0,
                         reports_dir=None, save=False)  # fmt: skip
    with pytest.raises(ValueError) as refused:
        run_training(config)
    assert str(refused.value) == LDA_NEEDS_FILLS.format(name="income")
    trained = run_training(replace(config, mitigation="thresholds"))
    assert trained.lda is None and "lda" not in trained.metrics


# -- the done-when, from outside ------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One served mode's decisions on the unseen book, judged by the oracle."""

    gender_ratio: float
    age_band_ratio: float
    agreement: float
    accuracy_repaid: float

    def line(self) -> str:
        return (
            f"gender {self.gender_ratio:.3f}, age_band {self.age_band_ratio:.3f}, "
            f"agreement {self.agreement:.3f}, accuracy vs repaid {self.accuracy_repaid:.3f}"
        )


def _ratio(approved: np.ndarray, groups: np.ndarray) -> float:
    rates = [approved[groups == g].mean() for g in np.unique(groups)]
    return float(min(rates) / max(rates))


def _served_decisions(url: str, records: list[dict]) -> np.ndarray:
    approved = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for start in range(0, len(records), BATCH):
            body = {"applications": records[start : start + BATCH]}
            response = http.post("/decide_batch", json=body)
            response.raise_for_status()
            approved += [d["approved"] for d in response.json()["decisions"]]
    return np.array(approved)


def _measure(approved: np.ndarray, book) -> Measured:
    return Measured(
        gender_ratio=_ratio(approved, group_keys(book.columns, ("gender",))),
        age_band_ratio=_ratio(approved, group_keys(book.columns, ("age_band",))),
        agreement=float(np.mean(approved == book.label)),
        accuracy_repaid=float(np.mean(approved == book.repaid)),
    )


@pytest.fixture(scope="module", params=["income-bar", "proxy"])
def blind_model(request) -> TrainResult:
    """The default training (blind main model, lda mitigation) of one bias preset."""
    config = TrainConfig(
        rows=TRAIN_ROWS,
        seed=TRAIN_SEED,
        bias=BiasConfig(preset=request.param),
        bootstrap=50,
        reports_dir=None,
        model_name=f"lda-{request.param}",
    )
    return run_training(config)


@pytest.mark.integration
def test_lda_meets_the_targets_on_an_unseen_book(blind_model, tmp_path):
    preset = blind_model.config.bias.preset
    assert not blind_model.config.include_sensitive  # `unmitigated` is the blind baseline
    unseen = synthetic_loan_book(UNSEEN_ROWS, seed=UNSEEN_SEED, bias=BiasConfig(preset=preset))
    records = to_records(unseen.columns)
    tag = blind_model.tag or ""
    servers = {
        mode: LiveService(tag, FAIRGATE_POLICY=mode, FAIRGATE_RECORD="off")
        for mode in ("lda", "unmitigated")
    }
    try:
        for server in servers.values():
            server.wait()
        measured = {
            mode: _measure(_served_decisions(server.url, records), unseen)
            for mode, server in servers.items()
        }
        out = tmp_path / "probe.json"
        probe = _cli("probe", "--once", "--target", servers["lda"].url, "--json", str(out))
    finally:
        for server in servers.values():
            server.stop()
    lda, base = measured["lda"], measured["unmitigated"]
    report = f"{preset}: baseline {base.line()}; lda {lda.line()}"
    print(report)
    assert lda.gender_ratio >= 0.80, report
    assert lda.age_band_ratio >= base.age_band_ratio - 0.01, report
    assert lda.agreement >= base.agreement - 0.03, report
    assert lda.accuracy_repaid >= base.accuracy_repaid - 0.01, report

    assert probe.returncode == 0, probe.stdout + probe.stderr
    audit = json.loads(out.read_text())
    pairs = [p for a in audit["attributes"] for p in a["pairs"]]
    assert pairs and all(p["flip_rate"] == 0 for p in pairs), pairs
    assert all(p["mean_score_difference"] == 0 for p in pairs), pairs
    gap = audit["gap"]
    assert gap is None or (gap["median"] == 0 and gap["p10"] == 0 and gap["p90"] == 0), gap
