"""The keyed draw: what feeds it, what does not, and that it is a fair uniform draw."""

import hashlib
import hmac
import struct

import numpy as np
import pytest

from fairgate.draw import DrawKey, draw_fields
from fairgate.schema import SYNTHETIC_CONTRACT
from training.loan_book import synthetic_loan_book

FIELDS = draw_fields(SYNTHETIC_CONTRACT)

SECRET = b"test-draw-key-0123456789"


@pytest.fixture(scope="module")
def columns():
    return synthetic_loan_book(5_000, seed=3).columns


def test_draw_fields_exclude_the_id_and_the_protected_attributes():
    assert draw_fields(SYNTHETIC_CONTRACT) == (
        "annual_income",
        "employment_type",
        "employment_years",
        "weekly_hours",
        "loan_amount",
        "loan_term_months",
        "monthly_debt_payments",
        "credit_history_years",
        "delinquencies_2y",
    )


def test_one_draw_equals_an_independent_hmac():
    row = {
        "application_id": np.array(["X-1"], dtype=object),
        "annual_income": np.array([52000.0]),
        "age": np.array([34.0]),
        "gender": np.array(["female"], dtype=object),
        "employment_type": np.array(["salaried"], dtype=object),
        "employment_years": np.array([6.0]),
        "weekly_hours": np.array([38.0]),
        "loan_amount": np.array([15000.0]),
        "loan_term_months": np.array([36.0]),
        "monthly_debt_payments": np.array([450.0]),
        "credit_history_years": np.array([9.0]),
        "delinquencies_2y": np.array([0.0]),
    }
    # By hand: the eight numbers in field order, then employment type as length + UTF-8.
    message = (
        struct.pack(">8d", 52000.0, 6.0, 38.0, 15000.0, 36.0, 450.0, 9.0, 0.0) + b"\x00\x08salaried"
    )
    digest = hmac.new(SECRET, message, hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert DrawKey(SECRET).draws(row, FIELDS)[0] == expected
    # The same applicant with ints for whole numbers and a negative zero draws the same.
    as_ints = row | {"age": np.array([34]), "loan_term_months": np.array([36])}
    as_ints["delinquencies_2y"] = np.array([-0.0])
    assert DrawKey(SECRET).draws(as_ints, FIELDS)[0] == expected


def test_id_and_protected_attributes_do_not_move_the_draw(columns):
    key = DrawKey(SECRET)
    base = key.draws(columns, FIELDS)
    n = len(base)
    changed = dict(columns)
    changed["application_id"] = np.array([f"fresh-{i}" for i in range(n)], dtype=object)
    changed["gender"] = np.where(columns["gender"] == "female", "male", "female").astype(object)
    changed["age"] = np.where(columns["age"] < 50, 70, 25)
    np.testing.assert_array_equal(key.draws(changed, FIELDS), base)
    moved = dict(columns) | {"loan_amount": columns["loan_amount"] + 1.0}
    assert (key.draws(moved, FIELDS) != base).mean() > 0.999


def test_draws_depend_on_the_key_and_are_uniform(columns):
    a = DrawKey(SECRET).draws(columns, FIELDS)
    b = DrawKey(SECRET[::-1]).draws(columns, FIELDS)
    assert (a != b).all()
    assert a.min() >= 0 and a.max() < 1
    # Uniform: each decile holds 10% of 5,000 draws within 4 standard errors (1.7 points).
    counts = np.bincount((a * 10).astype(int), minlength=10) / len(a)
    assert np.abs(counts - 0.1).max() < 4 * np.sqrt(0.09 / len(a))


@pytest.mark.parametrize("secret", [SECRET, b"k" * 64, b"a much longer key " * 8])
def test_mac_equals_the_standard_library_hmac(secret):
    key = DrawKey(secret)
    for message in (b"", b"x", bytes(range(256)) * 3):
        assert key.mac(message) == hmac.digest(secret, message, "sha256")


def test_short_keys_are_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DrawKey(b"short")


def test_a_missing_optional_value_is_its_own_value_and_no_crash():
    from fairgate.draw import encode_rows

    columns = {"a": np.array([1.0, np.nan]), "t": np.array(["", None], dtype=object)}
    empty, missing = encode_rows(columns, ("a", "t"))
    assert empty != missing
    assert missing.endswith(b"\xff\xff")  # no UTF-8 text has length 65535 and no bytes
    assert encode_rows({"t": np.array([None], dtype=object)}, ("t",)) != encode_rows(
        {"t": np.array([""], dtype=object)}, ("t",)
    )
