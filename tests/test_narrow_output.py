"""``fairgate probe --once`` output fits an 80-column terminal: nothing wraps."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from monitoring.audit import print_audit
from monitoring.control import ControlResult
from monitoring.counterfactual import AttributeResult, PairStats
from monitoring.gap import Gap
from monitoring.prober import CycleResult, Population

BANDS = ["18-29", "30-49", "50-64", "65+"]


def result() -> CycleResult:
    """Four age bands (six pairs), gender, an income gap and a control: the default cycle."""
    def rows(values):
        return [{"application_id": f"PROBE-0-{i:08d}", "annual_income": 123_456.0,
                 **dict.fromkeys(values, True)} for i in range(10)]  # fmt: skip

    gender = AttributeResult(
        "gender", {"female": 0.592, "male": 0.434}, 0.7331,
        [PairStats("gender", "female", "male", 1000, 0.158, 0.158, 0.0, -0.215, 0.4)],
        rows(["female", "male"]),
    )  # fmt: skip
    pairs = [PairStats("age_band", a, b, 1000, 0.1234, 0.1, 0.0234, 0.012, 0.1)
             for i, a in enumerate(BANDS) for b in BANDS[i + 1:]]  # fmt: skip
    age = AttributeResult("age_band", dict.fromkeys(BANDS, 0.516), 1.0, pairs, rows(BANDS))
    gap = Gap("gender", "female", "male", "annual_income", "dollars", 1, 100, 100, 0, 0,
              -10_501.2, -8_671.0, -0.19, np.zeros(100))  # fmt: skip
    return CycleResult("http://127.0.0.1:3000", 0, "synthetic", [gender, age], gap,
                       ControlResult(200, 0), Population(1000, 500, 548),
                       decisions_sent=12_574, duration_seconds=0.38)  # fmt: skip


def render(width: int) -> str:
    console = Console(record=True, width=width)
    print_audit(result(), console)
    return console.export_text()


def test_probe_output_at_80_columns_is_the_same_as_on_a_wide_terminal():
    narrow, wide = render(80), render(200)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert narrow == wide  # nothing was wrapped or squeezed to fit
    assert "four-fifths ratio 0.733" in narrow and "18-29 vs 30-49" in narrow
