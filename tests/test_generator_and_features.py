import numpy as np

from fairgate.generator import generate_applicants, to_applicants
from fairgate.schema import columns_from_applicants, synthetic_features


def test_generator_is_seeded():
    a, b = generate_applicants(500, seed=3), generate_applicants(500, seed=3)
    c = generate_applicants(500, seed=4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["annual_income"], c["annual_income"])


def test_generated_rows_pass_the_schema_and_look_like_a_loan_book():
    columns = generate_applicants(2000, seed=1)
    applicants = to_applicants(columns)  # raises if any row breaks the schema
    assert len(applicants) == 2000
    assert 0.4 < np.mean(columns["gender"] == "female") < 0.6
    assert 30_000 < np.median(columns["annual_income"]) < 80_000
    women = columns["gender"] == "female"
    # The realistic asymmetry the proxy preset relies on: more part-time work among women.
    assert np.mean(columns["weekly_hours"][women] < 30) > np.mean(
        columns["weekly_hours"][~women] < 30
    )


def test_service_and_training_build_identical_features():
    columns = generate_applicants(1000, seed=9)
    served = columns_from_applicants(to_applicants(columns))
    for spec in (synthetic_features(), synthetic_features(include_sensitive=True)):
        np.testing.assert_array_equal(spec.build(columns), spec.build(served))


def test_monotone_constraints_cover_every_income_feature():
    spec = synthetic_features()
    constraints = dict(zip(spec.names, spec.monotonic_constraints, strict=True))
    assert constraints["log_income"] == 1
    assert constraints["debt_to_income"] == -1 and constraints["loan_to_income"] == -1
