"""End-to-end training at scale: ``python -m training.bench_scale --rows 1000000``.

Prints wall time per step and peak resident memory (generate, fit, evaluate, mitigate, save).
The model it saves is deleted from the store at the end: it is the benchmark's, not the user's.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

import bentoml

from training.pipeline import TrainConfig, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model", default="logistic")
    args = parser.parse_args()
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as reports:
        config = TrainConfig(
            rows=args.rows,
            model=args.model,
            include_sensitive=True,
            reports_dir=Path(reports),
            model_name="fairgate-bench",
        )
        result = run_training(config, lambda step: marks.append((step, time.perf_counter())))
        if result.tag is not None:
            bentoml.models.delete(result.tag)
    total = time.perf_counter() - started
    marks.append(("end", time.perf_counter()))
    print(
        f"rows={args.rows:,} model={args.model} total={total:.1f}s "
        f"peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}MiB"
    )
    for (step, at), (_, after) in itertools.pairwise(marks):
        print(f"  {step:<16} {after - at:6.1f}s")
    print(
        f"  dp ratio {result.metrics['tradeoff']['dp_ratio_before']:.3f} -> "
        f"{result.metrics['tradeoff']['dp_ratio_after']:.3f}"
    )


if __name__ == "__main__":
    main()
