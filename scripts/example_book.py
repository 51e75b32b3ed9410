"""Write examples/loan_book.csv: a small loan book in the shape ``fairgate train --data`` reads.

Drawn from the synthetic generator (seeded, so the file is the same on every run), with the
income column named ``income`` to show ``--map income=annual_income``. Regenerate with
``python scripts/example_book.py``; tests/test_docs.py checks the committed file matches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

# Run as ``python scripts/NAME.py``: this checkout's packages first, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.launch import REPO
from training.loan_book import BiasConfig, synthetic_loan_book

PATH = REPO / "examples" / "loan_book.csv"
ROWS, SEED = 1000, 2024


def example_book() -> str:
    book = synthetic_loan_book(ROWS, seed=SEED, bias=BiasConfig())
    frame = pd.DataFrame(book.columns).rename(columns={"annual_income": "income"})
    frame["approved"] = book.label
    return frame.to_csv(index=False, float_format="%.2f", lineterminator="\n")


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(example_book())
    print(f"wrote {PATH.relative_to(REPO)}")
