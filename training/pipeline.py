"""One training run: loan book -> split -> fit -> audit -> mitigate -> compile -> save.

Mitigation (``TrainConfig.mitigation``): ``lda`` (the default) searches a less
discriminatory alternative (``training/lda_stage.py``) besides compiling the group-threshold
policies; ``thresholds`` compiles those alone (faster, and the model then has no ``lda``
mode). The group-threshold modes are built and servable either way.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
from sklearn.model_selection import train_test_split

from fairgate.artifacts import DEFAULT_MODEL_NAME
from fairgate.contract import Contract, builtin_contract, load_contract, parse_contract
from fairgate.contract_features import ContractFeatures, group_keys
from fairgate.contract_missing import learn_fills
from fairgate.contract_synth import record_synthesis
from fairgate.policy import ThresholdPolicy, UnseenRule
from fairgate.reasons import reference_applicant
from fairgate.scorer import Scorer
from training.compile_model import compile_model
from training.compile_policy import deterministic_policy
from training.contract_fills import with_learnt_fills
from training.fairness import fairness_report
from training.lda_stage import LdaOutcome, check_lda_features, run_lda
from training.loan_book import BiasConfig, LoanBook, load_loan_book, synthetic_loan_book
from training.mitigate import Constraint, Objective, compile_policy, fit_threshold_optimizer
from training.model import ModelKind, build_model
from training.report import write_reports
from training.save_model import save_artifacts

Step = Callable[[str], None]
Mitigation = Literal["lda", "thresholds"]
MITIGATIONS: Final[tuple[str, ...]] = get_args(Mitigation)
_PACKAGES = ("fairgate", "scikit-learn", "fairlearn", "numpy", "mimesis", "bentoml")


@dataclass(frozen=True)
class TrainConfig:
    rows: int = 200_000
    seed: int = 42
    bias: BiasConfig = field(default_factory=BiasConfig)
    model: ModelKind = "logistic"
    include_sensitive: bool = False
    constraint: Constraint = "demographic_parity"
    objective: Objective = "accuracy_score"
    # "lda": also search a less discriminatory alternative (the default served policy).
    mitigation: Mitigation = "lda"
    # Empty: the contract's [groups] policy / audit lists.
    attributes: tuple[str, ...] = ()
    audit_attributes: tuple[str, ...] = ()
    unseen_rule: UnseenRule = "most-lenient"
    bootstrap: int = 200
    data: Path | None = None
    # None: the built-in synthetic contract (the default book's).
    contract: Path | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    model_name: str = DEFAULT_MODEL_NAME
    reports_dir: Path | None = Path("reports")
    save: bool = True


@dataclass
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass
class TrainResult:
    config: TrainConfig
    book: LoanBook
    features: np.ndarray
    split: Split
    model: Any
    optimizer: Any
    scorer: Scorer
    policy: ThresholdPolicy  # deterministic group thresholds ("mitigated")
    randomized: ThresholdPolicy  # fairlearn's randomized rule, compiled as is
    metrics: dict[str, Any]
    tag: str | None
    feature_builder: ContractFeatures
    contract_text: str
    synthesis: dict[str, Any]
    reference: np.ndarray  # the reasons' reference applicant, in model columns
    lda: LdaOutcome | None = None  # None: trained with mitigation "thresholds"

    @property
    def contract(self) -> Contract:
        return self.feature_builder.contract


# The fewest applicants a policy group needs: scikit-learn splits a stratum only with two
# members, and the 40% that leave training must hold two for the validation/test split;
# 40% of five is two, so five put at least one in each of train, validation and test.
MIN_GROUP_APPLICANTS: Final[int] = 5
_MIN_STRATUM: Final[int] = 2  # StratifiedShuffleSplit's "least populated class" floor
THIN_GROUP: Final[str] = (
    "group {name!r} has {count} applicants ({denied} denied): too few to split into "
    "train/validation/test; merge it with a neighbour band in the contract, or leave its "
    "attribute out of [groups] policy"
)
THIN_LABEL: Final[str] = (
    "the book has {count} {outcome} applicants: too few to split into train/validation/test"
)


class ThinGroupError(ValueError):
    """A policy group, or a whole label, too small to land in train, validation and test."""


def _split_strata(labels: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Stratum per row for one stratified split: label x group, merged until every stratum
    has the two members a split needs.

    A label x group stratum too small joins its group's larger stratum (the group still
    lands on both sides); a group still too small joins its label's pool of such rows; a
    pool still too small joins the largest stratum.
    """

    def small(strata: np.ndarray) -> np.ndarray:
        _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
        return counts[inverse] < _MIN_STRATUM

    strata = codes * 2 + labels
    approved = np.bincount(codes, weights=labels, minlength=codes.max(initial=0) + 1)
    larger = (2 * approved >= np.bincount(codes, minlength=len(approved))).astype(np.intp)
    rows = small(strata)
    strata[rows] = codes[rows] * 2 + larger[codes[rows]]
    rows = small(strata)
    strata[rows] = -1 - labels[rows]
    rows = small(strata)
    if rows.any():
        values, counts = np.unique(strata, return_counts=True)
        strata[rows] = values[np.argmax(counts)]
    return strata


def _split_off(
    index: np.ndarray, labels: np.ndarray, codes: np.ndarray, *, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    strata = _split_strata(labels, codes)
    held_out = int(np.ceil(test_size * len(index)))
    # scikit-learn also wants a member of every stratum on each side: with more strata
    # than a side has rows (many groups, few applicants), stratify on the label alone.
    if np.unique(strata).size > min(held_out, len(index) - held_out):
        strata = _split_strata(labels, np.zeros_like(codes))
    kept, split_off = train_test_split(
        index, test_size=test_size, random_state=seed, stratify=strata
    )
    return kept, split_off


def stratified_split(
    labels: np.ndarray, groups: np.ndarray, *, seed: int, attribute: str | None = None
) -> Split:
    """60/20/20 split, stratified on label x group so small groups land in every part.

    A label x group stratum too small to split is merged (``_split_strata``), so a band of
    23 applicants with 2 denied still splits. A group of fewer than
    ``MIN_GROUP_APPLICANTS`` is refused with ``ThinGroupError`` naming it as
    ``attribute=group`` (the policy grouping's name, when given), with its counts.
    """
    labels = np.asarray(labels).astype(np.intp)
    names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    denied = np.bincount(codes, weights=labels == 0, minlength=len(names)).astype(int)
    problems = [
        THIN_GROUP.format(
            name=f"{attribute}={names[i]}" if attribute else str(names[i]),
            count=int(sizes[i]),
            denied=int(denied[i]),
        )
        for i in np.flatnonzero(sizes < MIN_GROUP_APPLICANTS)
    ]
    for label, outcome in ((1, "approved"), (0, "denied")):
        count = int((labels == label).sum())
        if count < MIN_GROUP_APPLICANTS:
            problems.append(THIN_LABEL.format(count=count, outcome=outcome))
    if problems:
        raise ThinGroupError("; ".join(problems))
    index = np.arange(len(labels))
    train, rest = _split_off(index, labels, codes, test_size=0.4, seed=seed)
    validation, test = _split_off(rest, labels[rest], codes[rest], test_size=0.5, seed=seed)
    return Split(train=np.sort(train), validation=np.sort(validation), test=np.sort(test))


def groupings(
    contract: Contract,
    columns: dict[str, np.ndarray],
    attributes: tuple[str, ...],
    audit: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """Audit groupings: each attribute alone, the policy's grouping, and their intersection."""
    names = list(dict.fromkeys([*audit, *attributes]))
    result = {name: group_keys(contract, columns, (name,)) for name in names}
    for combined in {tuple(attributes), tuple(audit)}:
        if len(combined) > 1:
            result[contract.groups.separator.join(combined)] = group_keys(
                contract, columns, combined
            )
    return result


def resolve_contract(config: TrainConfig) -> tuple[Contract, str]:
    """The contract a run trains under, and its text as stored with the model."""
    if config.contract is None:
        contract = builtin_contract()
        text = resources.files("fairgate.contracts").joinpath(f"{contract.name}.toml")
        return contract, text.read_text("utf-8")
    return load_contract(config.contract), Path(config.contract).read_text(encoding="utf-8")


def resolved(config: TrainConfig, contract: Contract) -> TrainConfig:
    """``config`` with the contract's group lists filled in where the caller gave none."""
    return replace(
        config,
        attributes=config.attributes or contract.groups.policy,
        audit_attributes=config.audit_attributes or contract.groups.audit,
    )


MODEL_MISSING_NEEDS_GBM = (
    "field {name!r} says missing = 'model' (the model takes a missing number as it is), "
    "but the {model} model cannot: train with --model gbm, or fill it (median, "
    "most_frequent or constant)"
)


def _check_missing_for_model(contract: Contract, config: TrainConfig) -> None:
    """Only gradient boosting takes NaN; a logistic model would score it NaN and deny."""
    if config.model == "gbm":
        return
    used = ContractFeatures(contract, include_sensitive=config.include_sensitive).input_fields
    for name in used:
        spec = contract.field(name)
        if spec.missing == "model" and spec.numeric:
            raise ValueError(MODEL_MISSING_NEEDS_GBM.format(name=name, model=config.model))


def _take(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in columns.items()}


def run_training(
    config: TrainConfig, step: Step = lambda _: None, *, artifact_key: bytes | None = None
) -> TrainResult:
    """Train, audit, mitigate and (``config.save``) store; ``artifact_key`` signs the store
    entry (kept out of ``TrainConfig``, which is written to the reports)."""
    if config.mitigation not in MITIGATIONS:
        raise ValueError(
            f"mitigation must be one of {', '.join(MITIGATIONS)}, got {config.mitigation!r}"
        )
    step("loan book")
    contract, contract_text = resolve_contract(config)
    config = resolved(config, contract)
    if config.data is not None:
        book = load_loan_book(config.data, contract, column_map=config.column_map)
    elif config.contract is None:
        book = synthetic_loan_book(config.rows, seed=config.seed, bias=config.bias)
    else:
        raise ValueError("--contract describes your own loan book: give the file with --data")
    policy_groups = group_keys(contract, book.columns, config.attributes)
    policy_attribute = contract.groups.separator.join(config.attributes)
    split = stratified_split(
        book.label, policy_groups, seed=config.seed, attribute=policy_attribute
    )
    # Missing values are filled with what the training rows alone say (no validation or
    # test row leaks into a fill), and the fills travel with the model in its contract.
    fills = learn_fills(contract, _take(book.columns, split.train))
    contract_text = with_learnt_fills(contract_text, fills, len(split.train))
    contract = parse_contract(contract_text)
    _check_missing_for_model(contract, config)
    if config.mitigation == "lda":
        check_lda_features(contract)  # before any fit, not after minutes of them
    spec = ContractFeatures(contract, include_sensitive=config.include_sensitive)
    features = spec.build(book.columns)

    step("fit model")
    model = build_model(config.model, monotonic=spec.monotonic_constraints, seed=config.seed)
    model.fit(features[split.train], book.label[split.train])
    scorer = compile_model(model)

    step("baseline audit")
    test_columns = _take(book.columns, split.test)
    test_groupings = groupings(contract, test_columns, config.attributes, config.audit_attributes)
    y_test = book.label[split.test]
    # The sandbox's ground truth, where there is one (the synthetic book).
    repaid_test = None if book.repaid is None else book.repaid[split.test]
    test_scores = scorer.score(features[split.test])
    baseline = fairness_report(
        y_test,
        (test_scores > 0.5).astype(np.int8),
        test_scores,
        test_groupings,
        n_boot=config.bootstrap,
        seed=config.seed,
        repaid=repaid_test,
    )

    step("mitigate")
    validation = split.validation
    optimizer = fit_threshold_optimizer(
        model,
        features[validation],
        book.label[validation],
        policy_groups[validation],
        constraint=config.constraint,
        objective=config.objective,
        unseen_rule=config.unseen_rule,
    )
    validation_scores = scorer.score(features[validation])
    randomized = compile_policy(
        optimizer,
        attributes=config.attributes,
        scores=validation_scores,
        groups=policy_groups[validation],
        unseen_rule=config.unseen_rule,
    )
    policy, fits = deterministic_policy(
        randomized,
        scores=validation_scores,
        labels=book.label[validation],
        groups=policy_groups[validation],
    )
    approved, _, _ = policy.decide(test_scores, policy_groups[split.test])
    mitigated = fairness_report(
        y_test,
        approved.astype(np.int8),
        None,
        test_groupings,
        n_boot=config.bootstrap,
        seed=config.seed,
        repaid=repaid_test,
    )
    # The randomized column is fairlearn's own seeded predict: the figures the deterministic
    # thresholds are compiled to reproduce, from the library rather than from our compilation.
    lottery = optimizer.predict(
        features[split.test], sensitive_features=policy_groups[split.test], random_state=config.seed
    )
    randomized_report = fairness_report(
        y_test,
        np.asarray(lottery).astype(np.int8),
        None,
        test_groupings,
        n_boot=config.bootstrap,
        seed=config.seed,
        repaid=repaid_test,
    )

    lda = None
    if config.mitigation == "lda":
        step("search less discriminatory alternative")
        lda = run_lda(
            contract,
            book.columns,
            book.label,
            train=split.train,
            validation=validation,
            test=split.test,
            attributes=config.attributes,
            audit=config.audit_attributes,
            rule_groups=list(policy.rules),
            main_scores=validation_scores,
            main_policies={
                "mitigated": policy.decide(validation_scores, policy_groups[validation])[0],
                "randomized": optimizer.predict(
                    features[validation],
                    sensitive_features=policy_groups[validation],
                    random_state=config.seed,
                ),
            },
            repaid=book.repaid,
            seed=config.seed,
            n_boot=config.bootstrap,
        )

    attribute = contract.groups.separator.join(config.attributes)
    # Field summaries the prober and load tests synthesize from: the whole book, and the
    # applicants nearest their group's threshold under the served policy.
    # Over the whole book: a small book's validation split alone may be too few applicants
    # for a boundary population. Summaries only; no row is stored.
    synthesis_dict = record_synthesis(
        contract,
        book.columns,
        policy.boundary_distance(scorer.score(features), policy_groups),
    ).to_dict()
    # Reasons for denials are measured against the median approved training applicant.
    reference = reference_applicant(features[split.train], book.label[split.train] == 1)
    metrics: dict[str, Any] = {
        "tag": None,
        "config": _config_dict(config),
        "contract": {"name": contract.name, "version": contract.version},
        "data": {
            "source": book.source,
            "rows": len(book),
            "fingerprint": book.fingerprint(),
            "train_rows": len(split.train),
            "validation_rows": len(split.validation),
            "test_rows": len(split.test),
        },
        "baseline": baseline,
        "randomized": randomized_report,
        "mitigated": mitigated,
        "deterministic_fit": {g: f.to_dict() for g, f in fits.items()},
        "tradeoff": {
            "accuracy_cost": mitigated["overall"]["accuracy"] - baseline["overall"]["accuracy"],
            "dp_ratio_before": baseline["groups"][attribute]["demographic_parity_ratio"],
            "dp_ratio_after": mitigated["groups"][attribute]["demographic_parity_ratio"],
        },
        "policy": policy.to_dict(),
        "randomized_policy": randomized.to_dict(),
        "versions": {name: version(name) for name in _PACKAGES}
        | {"python": platform.python_version()},
    }
    if lda is not None:
        # Absent when trained with --mitigation thresholds (no search, no lda mode).
        metrics["lda"] = lda.metrics
    tag = None
    if config.save:
        step("save artifacts")
        tag = save_artifacts(
            name=config.model_name,
            scorer=scorer,
            policy=policy,
            randomized=randomized,
            features=spec,
            contract_text=contract_text,
            synthesis=synthesis_dict,
            reference=reference,
            metadata=_artifact_metadata(metrics, contract.groups.separator, lda),
            sklearn_model=model,
            lda=lda,
            artifact_key=artifact_key,
        )
        metrics["tag"] = tag
    if config.reports_dir is not None:
        step("write reports")
        write_reports(
            config.reports_dir,
            metrics,
            labels=book.label[validation],
            scores=validation_scores,
            groups=policy_groups[validation],
        )
    return TrainResult(
        config=config,
        book=book,
        features=features,
        split=split,
        model=model,
        optimizer=optimizer,
        scorer=scorer,
        policy=policy,
        randomized=randomized,
        metrics=metrics,
        tag=tag,
        feature_builder=spec,
        contract_text=contract_text,
        synthesis=synthesis_dict,
        reference=reference,
        lda=lda,
    )


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    data = asdict(config)
    if config.data is not None:
        # The bias and the row count drive the synthetic generator only: a real book has
        # neither, and showing the defaults would claim an income bar it never had.
        data["bias"] = data["rows"] = None
    data["data"] = str(config.data) if config.data else None
    data["reports_dir"] = str(config.reports_dir) if config.reports_dir else None
    data["contract"] = str(config.contract) if config.contract else None
    return data


def _artifact_metadata(
    metrics: dict[str, Any], separator: str, lda: LdaOutcome | None
) -> dict[str, Any]:
    """What the service exposes on GET /policy: config, data identity, training-time
    fairness, and the less discriminatory alternative's summary (``lda``; None without)."""
    attribute = separator.join(metrics["config"]["attributes"])
    summary = {
        label: {
            "overall": metrics[label]["overall"],
            "by_group": metrics[label]["groups"][attribute]["by_group"],
            # Groups left out of the ratios and differences below, with their counts.
            "too_small": metrics[label]["groups"][attribute]["too_small"],
            "demographic_parity_ratio": metrics[label]["groups"][attribute][
                "demographic_parity_ratio"
            ],
            "demographic_parity_difference": metrics[label]["groups"][attribute][
                "demographic_parity_difference"
            ],
            "equalized_odds_difference": metrics[label]["groups"][attribute][
                "equalized_odds_difference"
            ],
        }
        for label in ("baseline", "randomized", "mitigated")
    }
    return {
        "deterministic_fit": metrics["deterministic_fit"],
        "config": metrics["config"],
        "contract": metrics["contract"],
        "data": metrics["data"],
        "fairness": summary,
        "lda": None if lda is None else lda.summary(),
        "versions": metrics["versions"],
    }
