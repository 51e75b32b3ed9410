"""Benchmark: the contract's feature builder against ``FeatureSpec.build`` (1 and 1,000 rows).

``python -m fairgate.contract_bench`` prints microseconds per build, median of repeats.
"""

from __future__ import annotations

import statistics
import timeit

from fairgate.contract import builtin_contract
from fairgate.contract_features import ContractFeatures
from fairgate.features import FeatureSpec
from fairgate.generator import generate_applicants


def main() -> None:
    contract = builtin_contract()
    table = generate_applicants(1000, seed=0)
    for rows in (1, 1000):
        columns = {name: values[:rows] for name, values in table.items()}
        for label, build in (
            ("FeatureSpec.build", FeatureSpec().build),
            ("ContractFeatures.build", ContractFeatures(contract).build),
        ):
            number = 2000 if rows == 1 else 300
            runs = timeit.repeat(lambda b=build, c=columns: b(c), number=number, repeat=7)
            micros = statistics.median(runs) / number * 1e6
            print(f"{rows:>5} rows  {label:<24} {micros:8.1f} us")


if __name__ == "__main__":
    main()
