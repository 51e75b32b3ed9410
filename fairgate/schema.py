"""The built-in synthetic book's applicant, derived from its contract.

There is one applicant schema: the contract's (``fairgate/contracts/synthetic.toml`` for the
default book). Everything here is computed from that contract, for the synthetic generator,
the examples and the tests; a deployable derives its request model from the contract of the
model it serves (``fairgate.contract_request.request_model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from fairgate.contract import Contract, builtin_contract
from fairgate.contract_features import ContractFeatures, RequestColumns, attribute_column
from fairgate.contract_features import group_keys as contract_group_keys
from fairgate.contract_request import request_model

MAX_BATCH: Final[int] = 1000

SYNTHETIC_CONTRACT: Final[Contract] = builtin_contract()
Applicant = request_model(SYNTHETIC_CONTRACT)
APPLICANT_FIELDS: Final[tuple[str, ...]] = SYNTHETIC_CONTRACT.field_names
_AGE_BAND = SYNTHETIC_CONTRACT.attribute("age_band")
AGE_BANDS: Final[tuple[str, ...]] = _AGE_BAND.labels or ()
AGE_BAND_REPRESENTATIVE: Final[dict[str, int]] = {
    label: int(value)
    for label, value in zip(AGE_BANDS, _AGE_BAND.representatives or (), strict=True)
}


def age_band(age: np.ndarray) -> np.ndarray:
    """Band labels of ages, e.g. ``age_band(np.array([25, 70]))`` -> ``['18-29', '65+']``."""
    return attribute_column(SYNTHETIC_CONTRACT, "age_band", {"age": np.asarray(age)})


def group_keys(columns: Mapping[str, np.ndarray], attributes: tuple[str, ...]) -> np.ndarray:
    """Group labels under the synthetic contract, e.g. ``'female&30-49'``."""
    return contract_group_keys(SYNTHETIC_CONTRACT, columns, attributes)


def synthetic_features(*, include_sensitive: bool = False) -> ContractFeatures:
    """The synthetic contract's feature builder (``include_sensitive``: the naive model's)."""
    return ContractFeatures(SYNTHETIC_CONTRACT, include_sensitive=include_sensitive)


columns_from_applicants = RequestColumns(SYNTHETIC_CONTRACT)
