"""What fairgate relies on in its dependencies: prometheus_client through public API only,
and the one private fairlearn structure it reads, pinned and checked here."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Mapping
from importlib.metadata import version
from numbers import Real
from pathlib import Path

import numpy as np
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from packaging.requirements import Requirement
from sklearn.linear_model import LogisticRegression

from fairgate.policy import ThresholdPolicy
from service.launch import REPO

TREES = ("fairgate", "record", "training", "service", "monitoring", "loadtests", "cli",
         "scripts", "tests")  # fmt: skip
# prometheus_client's metric internals: they change between releases without notice.
PROMETHEUS_PRIVATE = frozenset({
    "_metrics", "_upper_bounds", "_buckets", "_sum", "_value", "_count", "_created",
    "_labelnames", "_labelvalues", "_multiprocess_mode", "_raise_if_not_observable",
    "_names_to_collectors", "_collector_to_names", "_child_samples", "_metric_init",
})  # fmt: skip
SHAPE_CHANGED = (
    "fairlearn {version}: ThresholdOptimizer.interpolated_thresholder_.interpolation_dict "
    "no longer has the shape fairgate.policy.ThresholdPolicy.from_threshold_optimizer reads "
    "({what}); update the compiler, then the fairlearn bound in pyproject.toml"
)


def _python_files() -> list[Path]:
    return [path for tree in TREES for path in sorted((REPO / tree).rglob("*.py"))]


def test_no_private_prometheus_client_attribute_is_read():
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in PROMETHEUS_PRIVATE
                # An object's own private fields are its business (fairgate.reasons' _sum).
                and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_fairlearn_s_fitted_rule_has_the_shape_the_compiler_reads(constraint):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 2))
    labels = (features[:, 0] + rng.normal(size=400) > 0).astype(int)
    groups = np.where(rng.random(400) < 0.5, "a", "b")
    model = LogisticRegression().fit(features, labels)
    optimizer = ThresholdOptimizer(
        estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
    ).fit(features, labels, sensitive_features=groups)

    def check(condition: bool, what: str) -> None:
        assert condition, SHAPE_CHANGED.format(version=version("fairlearn"), what=what)

    thresholder = getattr(optimizer, "interpolated_thresholder_", None)
    check(thresholder is not None, "no interpolated_thresholder_")
    table = getattr(thresholder, "interpolation_dict", None)
    check(isinstance(table, Mapping), "no interpolation_dict mapping")
    check(set(table) == {"a", "b"}, f"keys {sorted(table)!r} are not the groups")
    for group, item in table.items():
        for name in ("p0", "p1"):
            check(isinstance(getattr(item, name, None), Real), f"{group}: no number {name}")
        for name in ("operation0", "operation1"):
            operation = getattr(item, name, None)
            check(getattr(operation, "operator", None) in {">", "<"}, f"{group}: {name}.operator")
            threshold = getattr(operation, "threshold", None)
            check(isinstance(threshold, Real), f"{group}: {name}.threshold is no number")
        check(callable(getattr(item, "get", None)), f"{group}: no get() for the optional keys")
        for name in ("p_ignore", "prediction_constant"):
            value = item.get(name, 0.0)
            check(isinstance(value, Real), f"{group}: {name} is no number")
        if constraint == "equalized_odds":
            check("p_ignore" in item, f"{group}: equalized odds without p_ignore")
    policy = ThresholdPolicy.from_threshold_optimizer(
        optimizer, attributes=("g",), scores=model.predict_proba(features)[:, 1], groups=groups
    )
    assert set(policy.rules) == {"a", "b"}


def test_fairlearn_is_bounded_below_its_next_minor_release():
    """The private read is checked against the installed release only: the bound keeps an
    unchecked release from being installed."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == "fairlearn"]
    installed = version("fairlearn")
    assert requirement.specifier.contains(installed)
    major, minor = (int(part) for part in installed.split(".")[:2])
    assert not requirement.specifier.contains(f"{major}.{minor + 1}.0"), requirement
