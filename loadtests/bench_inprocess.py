"""In-process decision cost, side by side in one run: ``python -m loadtests.bench_inprocess``.

Compares the served path (feature build + compiled score + compiled policy on validated
requests) with the naive path (pandas one-row DataFrame -> sklearn pipeline ->
fairlearn ``ThresholdOptimizer.predict``), for single applications and batches of 1,000.
``fairgate bench`` runs the same measurement as part of its report.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from fairgate.artifacts import ServingBundle
from fairgate.decider import Decider
from fairgate.draw import DrawKey
from fairgate.generator import generate_applicants, to_applicants
from fairgate.schema import group_keys, synthetic_features
from training.pipeline import TrainConfig, TrainResult, run_training


def timings(fn: Callable[[int], object], repeats: int) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - started
    return out


def measure(result: TrainResult, repeats: int = 3000) -> list[tuple[str, float, float]]:
    """(path, p50 us, p99 us) for fairgate (mitigated, the default, and randomized) and
    ThresholdOptimizer.predict, single and 1,000."""
    spec = synthetic_features(include_sensitive=result.config.include_sensitive)
    # As served: denials carry reasons (measured against the training reference).
    decider = Decider(
        ServingBundle(
            tag="bench", scorer=result.scorer, policy=result.policy, features=spec,
            reference=result.reference,
        )
    )  # fmt: skip
    silent = Decider(
        ServingBundle(tag="bench", scorer=result.scorer, policy=result.policy, features=spec)
    )
    columns = generate_applicants(1000, seed=99)
    applicants = to_applicants(columns)
    frames = [
        pd.DataFrame(spec.build({k: v[i : i + 1] for k, v in columns.items()})) for i in range(1000)
    ]
    # The randomized mode adds one HMAC per application (the keyed draw).
    randomized = Decider(
        ServingBundle(
            tag="bench",
            scorer=result.scorer,
            policy=result.randomized,
            features=spec,
            reference=result.reference,
        ),
        DrawKey(b"benchmark-draw-key-0123456789"),
    )
    groups = group_keys(columns, ("gender",))
    optimizer = result.optimizer
    whole = pd.DataFrame(spec.build(columns))
    for i in range(200):  # warm-up
        decider.decide(applicants[i : i + 1])
    single = timings(lambda i: decider.decide(applicants[i % 1000 : i % 1000 + 1]), repeats)
    naive_single = timings(
        lambda i: optimizer.predict(
            frames[i % 1000], sensitive_features=groups[i % 1000 : i % 1000 + 1], random_state=i
        ),
        max(repeats // 10, 100),
    )
    batch = timings(lambda _: decider.decide(applicants), 100)
    naive_batch = timings(
        lambda i: optimizer.predict(whole, sensitive_features=groups, random_state=i), 30
    )
    for i in range(200):
        randomized.decide(applicants[i : i + 1])
    randomized_single = timings(
        lambda i: randomized.decide(applicants[i % 1000 : i % 1000 + 1]), repeats
    )
    randomized_batch = timings(lambda _: randomized.decide(applicants), 100)
    # What reasons add to a denial: the same denied applications, reasons on and off.
    denied = [a for a, ok in zip(applicants, decider.decide(applicants).approved, strict=True)
              if not ok]  # fmt: skip
    n = len(denied)
    with_reasons = timings(lambda i: decider.decide(denied[i % n : i % n + 1]), repeats)
    without = timings(lambda i: silent.decide(denied[i % n : i % n + 1]), repeats)
    rows = []
    for name, values in (
        ("fairgate, single", single),
        ("ThresholdOptimizer.predict, single", naive_single),
        ("fairgate, batch of 1000", batch),
        ("ThresholdOptimizer.predict, batch of 1000", naive_batch),
        ("fairgate randomized (keyed draw), single", randomized_single),
        ("fairgate randomized (keyed draw), batch of 1000", randomized_batch),
        ("fairgate, single denial, with its reasons (as served)", with_reasons),
        ("fairgate, single denial, reasons off", without),
    ):
        p50, p99 = np.percentile(values, [50, 99]) * 1e6
        rows.append((name, float(p50), float(p99)))
    return rows


def markdown(rows: list[tuple[str, float, float]]) -> str:
    lines = ["| path | p50 (us) | p99 (us) |", "|---|---:|---:|"]
    lines += [f"| {name} | {p50:,.0f} | {p99:,.0f} |" for name, p50, p99 in rows]
    lines.append(
        f"\nsingle: naive / fairgate = {rows[1][1] / rows[0][1]:.1f}x; "
        f"batch of 1000: naive / fairgate = {rows[3][1] / rows[2][1]:.1f}x"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="logistic")
    parser.add_argument("--repeats", type=int, default=3000)
    args = parser.parse_args()
    result = run_training(
        TrainConfig(
            rows=60_000,
            model=args.model,
            include_sensitive=True,
            bootstrap=0,
            reports_dir=None,
            save=False,
        )
    )
    print(f"model={args.model}")
    print(markdown(measure(result, args.repeats)))


if __name__ == "__main__":
    main()
