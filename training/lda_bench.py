"""Time the less-discriminatory-alternative search: ``python -m training.lda_bench --rows 200000``.

For each bias preset: a training book of ``--rows`` applicants, a validation book and an
unseen book (other seeds, a quarter the size by default) are generated, untimed; then the
search (every fit, every candidate's validation figures) and the selection are timed
together. Prints the time, the outcome, and the baseline's and the chosen candidate's
figures on validation and on the unseen book (which took no part in choosing).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fairgate.schema import SYNTHETIC_CONTRACT, group_keys, synthetic_features
from training.lda_figures import Figures, ValidationAudit
from training.lda_search import feature_blocks, search
from training.lda_select import Selection, select
from training.loan_book import BIAS_PRESETS, BiasConfig, LoanBook, synthetic_loan_book

BUDGET_SECONDS = 120.0


def _groups(book: LoanBook) -> dict[str, np.ndarray]:
    return {a: group_keys(book.columns, (a,)) for a in SYNTHETIC_CONTRACT.groups.audit}


def _line(label: str, figures: Figures) -> str:
    parts = [
        f"  {label:<22} AUC {figures.auc:.3f}  agreement {figures.agreement:.3f}",
        f"approval {figures.approval_rate:.3f}",
    ]
    for attribute, ratio in figures.ratios.items():
        interval = figures.ratio_intervals.get(attribute)
        ci = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        shown = "n/a" if ratio is None else f"{ratio:.3f}"
        parts.append(f"{attribute} {shown}{ci}")
    odds = figures.equalized_odds.get("gender")
    if odds is not None:
        parts.append(f"EOD gender {odds:.3f}")
    if figures.accuracy_repaid is not None:
        parts.append(f"acc vs repaid {figures.accuracy_repaid:.3f}")
    return "  ".join(parts)


def run_preset(
    preset: str, *, rows: int, validation_rows: int, unseen_rows: int, seed: int
) -> dict[str, Any]:
    """One preset's timed search and selection, with the unseen book's figures."""
    bias = BiasConfig(preset=preset)  # type: ignore[arg-type]
    spec = synthetic_features()
    train = synthetic_loan_book(rows, seed=seed, bias=bias)
    validation = synthetic_loan_book(validation_rows, seed=seed + 1, bias=bias)
    unseen = synthetic_loan_book(unseen_rows, seed=seed + 2, bias=bias)
    x_train, x_val = spec.build(train.columns), spec.build(validation.columns)
    groups_train, groups_val = _groups(train), _groups(validation)
    policy = SYNTHETIC_CONTRACT.groups.separator.join(SYNTHETIC_CONTRACT.groups.policy)

    started = time.perf_counter()
    candidates = search(
        x_train,
        train.label,
        x_val,
        validation.label,
        groups_train=groups_train,
        groups_val=groups_val,
        blocks=feature_blocks(spec),
        seed=seed,
        repaid_val=validation.repaid,
        policy_attribute=policy,
    )
    selection: Selection = select([c.figures for c in candidates], baseline=candidates[0].name)
    seconds = time.perf_counter() - started

    audit = ValidationAudit(
        labels=unseen.label, groups=_groups(unseen), repaid=unseen.repaid, seed=seed
    )
    x_unseen = spec.build(unseen.columns)
    on_unseen = {
        c.name: audit.figures(c.name, c.scorer.score(x_unseen), threshold=c.threshold)
        for c in candidates
        if c.name in (selection.baseline.name, selection.chosen.name)
    }
    return {
        "seconds": seconds,
        "candidates": len(candidates),
        "selection": selection,
        "unseen": on_unseen,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--validation-rows", type=int, default=None, help="default rows/4")
    parser.add_argument("--unseen-rows", type=int, default=None, help="default rows/4")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--preset", choices=[p for p in BIAS_PRESETS if p != "none"], action="append"
    )
    args = parser.parse_args(argv)
    presets = args.preset or ["income-bar", "proxy"]
    for preset in presets:
        result = run_preset(
            preset,
            rows=args.rows,
            validation_rows=args.validation_rows or args.rows // 4,
            unseen_rows=args.unseen_rows or args.rows // 4,
            seed=args.seed,
        )
        selection: Selection = result["selection"]
        verdict = "within" if result["seconds"] <= BUDGET_SECONDS else "OVER"
        print(
            f"{preset}: {result['candidates']} candidates searched and selected in "
            f"{result['seconds']:.1f}s ({verdict} the {BUDGET_SECONDS:.0f}s budget), "
            f"training rows {args.rows:,}"
        )
        print(f"  {selection.summary}")
        print(_line("baseline, validation", selection.baseline))
        print(_line("chosen, validation", selection.chosen))
        unseen = result["unseen"]
        print(_line("baseline, unseen book", unseen[selection.baseline.name]))
        print(_line("chosen, unseen book", unseen[selection.chosen.name]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss={peak:.0f}MiB")


if __name__ == "__main__":
    main()
