import numpy as np
import pandas as pd
import pytest

from fairgate.schema import SYNTHETIC_CONTRACT
from training.book_check import BookCheckError
from training.loan_book import BiasConfig, load_loan_book, synthetic_loan_book


def rates(book):
    women = book.columns["gender"] == "female"
    return book.label[women].mean(), book.label[~women].mean()


def test_income_bar_bias_lowers_women_approvals_but_not_repayment():
    book = synthetic_loan_book(30_000, seed=1, bias=BiasConfig(preset="income-bar", gap=30_000))
    women_rate, men_rate = rates(book)
    assert women_rate / men_rate < 0.7
    women = book.columns["gender"] == "female"
    # Ground truth does not depend on gender except through income.
    assert abs(book.repaid[women].mean() - book.repaid[~women].mean()) < 0.06


def test_no_bias_preset_is_near_parity_and_gap_zero_equals_none():
    none = synthetic_loan_book(30_000, seed=1, bias=BiasConfig(preset="none"))
    women_rate, men_rate = rates(none)
    assert women_rate / men_rate > 0.85
    zero_gap = synthetic_loan_book(30_000, seed=1, bias=BiasConfig(preset="income-bar", gap=0))
    np.testing.assert_array_equal(none.label, zero_gap.label)


def test_proxy_preset_biases_through_part_time_work():
    book = synthetic_loan_book(30_000, seed=1, bias=BiasConfig(preset="proxy"))
    women_rate, men_rate = rates(book)
    assert women_rate / men_rate < 0.85


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="bias preset"):
        BiasConfig(preset="sexist")  # type: ignore[arg-type]


def test_fingerprint_is_reproducible():
    a = synthetic_loan_book(2000, seed=5).fingerprint()
    assert a == synthetic_loan_book(2000, seed=5).fingerprint()
    assert a != synthetic_loan_book(2000, seed=6).fingerprint()


def _frame(n=200):
    book = synthetic_loan_book(n, seed=2)
    frame = pd.DataFrame(book.columns)
    frame["approved"] = book.label
    return frame.rename(columns={"annual_income": "income"})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_with_column_map(tmp_path, suffix):
    path = tmp_path / f"book{suffix}"
    frame = _frame()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    book = load_loan_book(path, SYNTHETIC_CONTRACT, column_map={"income": "annual_income"})
    assert len(book) == 200
    np.testing.assert_allclose(book.columns["annual_income"], frame["income"])
    np.testing.assert_array_equal(book.label, frame["approved"])
    assert book.fingerprint() == synthetic_loan_book(200, seed=2).fingerprint()


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "book.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(BookCheckError) as error:
        load_loan_book(path, SYNTHETIC_CONTRACT)
    assert error.value.problems == [
        "column 'income': not in the contract",
        "column 'annual_income': missing from the file",
    ]


def test_every_invalid_column_is_named_at_once(tmp_path):
    frame = _frame().rename(columns={"income": "annual_income"})
    frame.loc[3, "age"] = 12
    frame.loc[4, "gender"] = "robot"
    frame["loan_amount"] = frame["loan_amount"].astype(object)
    frame.loc[5, "loan_amount"] = "lots"
    path = tmp_path / "book.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(BookCheckError) as error:
        load_loan_book(path, SYNTHETIC_CONTRACT)
    message = str(error.value)
    assert "column 'age': 1 rows fail in_range(18, 100), e.g. 12" in message
    assert "column 'gender': 1 rows fail isin" in message and "'robot'" in message
    assert "column 'loan_amount': 1 rows fail type number, e.g. 'lots'" in message


CODES = """
name = "codes"
[[fields]]
name = "loan_ref"
type = "id"
[[fields]]
name = "region"
type = "category"
constraints = { enum = ["1", "2", "3"] }
[[fields]]
name = "amount"
type = "number"
constraints = { minimum = 0 }
[[fields]]
name = "months"
type = "integer"
constraints = { minimum = 0, required = false }
[label]
column = "ok"
approved = ["1"]
denied = ["0"]
[[protected]]
name = "region"
field = "region"
[groups]
policy = ["region"]
audit = ["region"]
prober = ["region"]
[[features]]
name = "amount"
transform = "as_is"
field = "amount"
"""


def test_numeric_codes_ids_and_blanks_in_a_csv(tmp_path):
    """Region codes 1/2/3 and numeric ids are text to the contract; a blank in an optional
    integer stays missing (NaN), never a made-up number; the label's "1" matches a CSV's 1."""
    from fairgate.contract import parse_contract
    from fairgate.contract_synth import record_marginals

    contract = parse_contract(CODES)
    path = tmp_path / "book.csv"
    path.write_text(
        "loan_ref,region,amount,months,ok\n101,1,10.5,12,1\n102,3,7.0,,0\n103,2,3.0,24,1\n"
    )
    book = load_loan_book(path, contract)
    assert book.columns["loan_ref"].tolist() == ["101", "102", "103"]
    assert book.columns["region"].tolist() == ["1", "3", "2"]
    months = book.columns["months"]
    assert months[0] == 12 and np.isnan(months[1]) and months[2] == 24
    assert book.label.tolist() == [1, 0, 1]
    marginals = record_marginals(contract, book.columns)
    assert min(marginals.quantiles["months"]) == 12 and max(marginals.quantiles["months"]) == 24
