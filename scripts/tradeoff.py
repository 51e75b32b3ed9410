"""Write docs/tradeoff.md: what the policy modes buy and cost, measured on one run.

Trains the naive model (``fairgate train --include-sensitive --rows 100000``: gender as a
feature, on the default ``income-bar`` book; the run also searches the attribute-blind
alternative, ``lda``) into a temporary BentoML home, serves it once per policy mode
(unmitigated, lda, mitigated, randomized) through the project's launcher, runs ``fairgate
probe --once --json`` against each with the default settings, and reads the training report
(reports/metrics.json). The README's section "What the policies buy and what they cost" is
spliced from the part of docs/tradeoff.md under "## In the README" (``python
scripts/readme.py``). Regenerate with ``python scripts/tradeoff.py`` (about a minute).

Every sentence that quotes a figure is built here from the data, including the comparisons
("fall", "change direction"), so the text stays true when the figures move.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

# Run as ``python scripts/NAME.py``: this checkout's packages first, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.server import running_server
from monitoring.figures import dollars, rate, ratio
from service.launch import REPO

PATH: Final[Path] = REPO / "docs" / "tradeoff.md"
ALERTS: Final[Path] = REPO / "monitoring" / "prometheus" / "rules" / "alerts.yml"
TRAIN_ARGS: Final[tuple[str, ...]] = ("--include-sensitive", "--rows", "100000")
MODES: Final[tuple[str, ...]] = ("unmitigated", "lda", "mitigated", "randomized")
REPORT_KEY: Final[dict[str, str]] = {  # policy mode -> its column in metrics.json
    "unmitigated": "baseline",
    "mitigated": "mitigated",
    "randomized": "randomized",
}  # lda: metrics["lda"]["test"]["chosen"], the search's own figures
HEADING: Final[dict[str, str]] = {
    "unmitigated": "unmitigated (naive model, one 0.5 threshold)",
    "lda": "lda (default: blind model, one threshold)",
    "mitigated": "mitigated (one threshold per group)",
    "randomized": "randomized (fairlearn's rule)",
}
PORTS: Final[dict[str, int]] = {
    "unmitigated": 3921,
    "mitigated": 3922,
    "randomized": 3923,
    "lda": 3924,
}
SANDBOX: Final[str] = "sandbox only: the synthetic book knows who repaid"
COUNT: Final[dict[int, str]] = {2: "both", 3: "all three", 4: "all four"}
# A fixed key keeps the randomized column repeatable run to run; a deployment keeps its own
# secret (FAIRGATE_DRAW_KEY), and its draws, hence its probe figures, differ from these.
DRAW_KEY: Final[str] = hashlib.sha256(b"fairgate scripts/tradeoff.py draw key, seed 0").hexdigest()
ATTRIBUTE: Final[str] = "gender"
WOMAN, MAN = "female", "male"
README_HEADING: Final[str] = "## In the README"


def commands() -> list[str]:
    """The commands a user types to reproduce the run (the script does the same in-process)."""
    serve = {
        "unmitigated": "fairgate serve --port 3921 --workers 1 --policy unmitigated &",
        "lda": "fairgate serve --port 3924 --workers 1 --policy lda &  # the default policy",
        "mitigated": "fairgate serve --port 3922 --workers 1 --policy mitigated &",
        "randomized": "FAIRGATE_DRAW_KEY=$(openssl rand -hex 32) \\\n"
        "  fairgate serve --port 3923 --workers 1 --policy randomized &",
    }
    probes = [
        f"fairgate probe --once --target http://127.0.0.1:{PORTS[m]} --json reports/{m}.json"
        for m in MODES
    ]
    return [f"fairgate train {' '.join(TRAIN_ARGS)}", *serve.values(), *probes]


def train(home: str, env: dict[str, str]) -> dict[str, Any]:
    reports = Path(home) / "reports"
    subprocess.run([sys.executable, "-m", "cli", "train", *TRAIN_ARGS, "--reports", str(reports)],
                   cwd=REPO, env=env, check=True)  # fmt: skip
    return json.loads((reports / "metrics.json").read_text())


def probe(mode: str, home: str, env: dict[str, str]) -> dict[str, Any]:
    extra = {"FAIRGATE_POLICY": mode} | ({"FAIRGATE_DRAW_KEY": DRAW_KEY} if mode == "randomized"
                                         else {})  # fmt: skip
    out = Path(home) / f"{mode}.json"
    with running_server(workers=1, env=env | extra) as server:
        subprocess.run([sys.executable, "-m", "cli", "probe", "--once", "--target", server.url,
                        "--json", str(out)], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.read_text())


def alert_lines() -> dict[str, float]:
    """The lines the three probe alerts fire at, read from alerts.yml (not restated here)."""
    text = ALERTS.read_text()
    noise = r"(?: [+-] 1e-9)?"  # the rules' guard against float noise at the line
    patterns = {
        "four_fifths": rf"fairgate_probe_four_fifths_ratio \* 1000{noise}\) / 1000 < ([\d.]+)",
        "flips": rf"fairgate_probe_flip_ratio \* 1000{noise}\) / 1000 > ([\d.]+)",
        "gap": r'fairgate_probe_gap_ratio\{quantile="0.5"\}\) \* 1000'
        + noise
        + r"\) / 1000 > ([\d.]+)",
    }
    lines = {}
    for name, pattern in patterns.items():
        found = re.search(pattern, text)
        if found is None:
            raise SystemExit(f"{ALERTS.relative_to(REPO)}: no match for {pattern!r}")
        lines[name] = float(found.group(1))
    return lines


def audited(metrics: dict[str, Any], mode: str) -> dict[str, Any]:
    """A mode's test-split figures from the training report. The group-threshold modes have
    the audit's per-group rates; ``lda`` has the search's figures of the chosen candidate
    (its ratio, not its per-group rates). ``accuracy_repaid`` is None on a real book."""
    if mode == "lda":
        chosen = metrics["lda"]["test"]["chosen"]
        return {
            "test_approval": None,
            "test_approval_rate": chosen["approval_rate"],
            "test_dp_ratio": chosen["ratios"][ATTRIBUTE],
            "accuracy": chosen["agreement"],
            "accuracy_repaid": chosen["accuracy_repaid"],
        }
    report = metrics[REPORT_KEY[mode]]
    group = report["groups"][ATTRIBUTE]
    return {
        "test_approval": {g: group["by_group"][g]["selection_rate"] for g in (WOMAN, MAN)},
        "test_approval_rate": report["overall"]["selection_rate"],
        "test_dp_ratio": group["demographic_parity_ratio"],
        "accuracy": report["overall"]["accuracy"],
        "accuracy_repaid": report["overall"].get("sandbox", {}).get("accuracy_repaid"),
    }


def figures(
    metrics: dict[str, Any], probes: dict[str, dict[str, Any]], probe_settings: dict[str, Any]
) -> dict[str, Any]:
    """The figures docs/tradeoff.md quotes, per mode, from the report and the probe JSON."""
    lines = alert_lines()
    per_mode: dict[str, Any] = {}
    base_accuracy = metrics["baseline"]["overall"]["accuracy"]
    for mode in MODES:
        audit = audited(metrics, mode)
        result = probes[mode]
        gender = next(a for a in result["attributes"] if a["attribute"] == ATTRIBUTE)
        pair = next(p for p in gender["pairs"] if {p["group_a"], p["group_b"]} == {WOMAN, MAN})
        woman_first = pair["group_a"] == WOMAN
        sign = 1 if woman_first else -1
        gap = result["gap"]
        per_mode[mode] = audit | {
            "accuracy_cost": audit["accuracy"] - base_accuracy,
            "probe_approval": {g: gender["approval_rate"][g] for g in (WOMAN, MAN)},
            "probe_four_fifths": gender["four_fifths_ratio"],
            "pairs": pair["pairs"],
            "flip_rate": pair["flip_rate"],
            "favours_man": pair["favours_b_rate"] if woman_first else pair["favours_a_rate"],
            "favours_woman": pair["favours_a_rate"] if woman_first else pair["favours_b_rate"],
            # mean(score of the woman - score of her male twin)
            "twin_score_difference": sign * pair["mean_score_difference"],
            "gap_median": gap["median"],
            "gap_p90": gap["p90"],
            "gap_ratio": gap["median_ratio"],
            "control_flip_rate": result["control"]["flip_rate"],
            "control_pairs": result["control"]["pairs"],
            "decisions_sent": result["decisions_sent"],
        }
        row = per_mode[mode]
        # The alerts' own rounding (floor the ratio; flips and gap ceiled) gives the same
        # verdicts as these comparisons of the raw figures.
        row["alerts"] = {
            "FairgateProbeFourFifthsBreach": row["probe_four_fifths"] < lines["four_fifths"],
            "FairgateCounterfactualFlips": row["flip_rate"] > lines["flips"]
            and row["control_flip_rate"] == 0,
            "FairgateGap": abs(row["gap_ratio"]) > lines["gap"],
        }
    rules, lottery = metrics["policy"]["rules"], metrics["randomized_policy"]["rules"]
    selection, chosen = metrics["lda"]["selection"], metrics["lda"]["test"]["chosen"]
    return {
        "modes": per_mode,
        "lda": {
            "outcome": selection["outcome"],
            "chosen": selection["chosen"],
            "baseline": selection["baseline"],
            "threshold": chosen["threshold"],
            "baseline_test_dp_ratio": metrics["lda"]["test"]["baseline"]["ratios"][ATTRIBUTE],
            "candidates": len(metrics["lda"]["candidates"]),
        },
        "thresholds": {g: rules[g]["threshold0"] for g in (WOMAN, MAN)},
        "randomized_rules": {g: lottery[g]["reads"] for g in (WOMAN, MAN)},
        "alert_lines": lines,
        "probe_settings": probe_settings,
        "bias_gap_dollars": metrics["config"]["bias"]["gap"],
        "bias_preset": metrics["config"]["bias"]["preset"],
        "model": metrics["config"]["model"],
        "training_seed": metrics["config"]["seed"],
        "rows": metrics["data"]["rows"],
        "test_rows": metrics["data"]["test_rows"],
    }


def _flips(row: dict[str, Any]) -> str:
    """'22.5%, all favouring the man' or '3.1% (2.0% favouring the man, 1.1% the woman)'."""
    if row["flip_rate"] == 0:
        return "0.0%"
    if row["favours_woman"] == 0:
        return f"{rate(row['flip_rate'])}, all favouring the man"
    if row["favours_man"] == 0:
        return f"{rate(row['flip_rate'])}, all favouring the woman"
    return (f"{rate(row['flip_rate'])} ({rate(row['favours_man'])} favouring the man, "
            f"{rate(row['favours_woman'])} the woman)")  # fmt: skip


def _gap(value: float) -> str:
    return dollars(value) if value <= 0 else f"+{dollars(value)}"


def _share(value: float) -> str:
    return f"{value:+.3f}" if value else "0.000"


def _modes(data: dict[str, Any]) -> list[str]:
    """The modes ``data`` has, in table order."""
    return [mode for mode in MODES if mode in data["modes"]]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _approval(row: dict[str, Any]) -> str:
    # lda's figures are the search's: its ratio, not its per-group rates.
    if row["test_approval"] is None:
        return f"{_pct(row['test_approval_rate'])} overall"
    return f"{_pct(row['test_approval'][WOMAN])} / {_pct(row['test_approval'][MAN])}"


def table(data: dict[str, Any]) -> list[str]:
    m, modes = data["modes"], _modes(data)

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(cell(m[mode]) for mode in modes) + " |"

    pct = _pct
    return [
        "| figure (dashboard panel) | " + " | ".join(HEADING[mode] for mode in modes) + " |",
        "|---|" + "---:|" * len(modes),
        row("test-split approval, women / men (training audit)", _approval),
        row("test-split demographic parity ratio", lambda r: f"{r['test_dp_ratio']:.3f}"),
        row("accuracy against the historical labels", lambda r: pct(r["accuracy"])),
        row(f"accuracy against who repaid ({SANDBOX})",
            lambda r: pct(r.get("accuracy_repaid"))),
        row('probe approval, female / male twins ("Probe approval rate")',
            lambda r: f"{pct(r['probe_approval'][WOMAN])} / {pct(r['probe_approval'][MAN])}"),
        row("probe four-fifths ratio", lambda r: ratio(r["probe_four_fifths"])),
        row('twin pairs decided differently ("Counterfactual flip rate")', _flips),
        row('median extra income a woman needs ("Gap", q0.5)',
            lambda r: _gap(r["gap_median"])),
        row("that gap over the book's median income (alert line 0.1)",
            lambda r: _share(r["gap_ratio"])),
        row("90th percentile of that gap (q0.9)", lambda r: _gap(r["gap_p90"])),
        row("identical applicants sent twice decided differently (control)",
            lambda r: f"{rate(r['control_flip_rate'])} of {r['control_pairs']}"),
        row("decisions sent by the cycle (twins, control, gap search)",
            lambda r: f"{r['decisions_sent']:,}"),
    ]  # fmt: skip


def _compare(before: float, after: float, what: str) -> str:
    if after == before:
        return f"{what} stay at {rate(before)}"
    verb = "fall" if after < before else "rise"
    return f"{what} {verb} from {rate(before)} to {rate(after)}"


def _direction(row: dict[str, Any]) -> str:
    if row["flip_rate"] == 0:
        return "none"
    if row["favours_man"] >= row["favours_woman"]:
        return "man"
    return "woman"


def _lda_bullet(data: dict[str, Any]) -> str:
    m, lda = data["modes"], data["lda"]
    u, b = m["unmitigated"], m["lda"]
    if b["flip_rate"] == 0 and b["gap_median"] == 0:
        twins = "Identical twins are decided alike: no flips, and no extra income for a woman"
    else:
        twins = (f"Twin pairs decided differently: {_flips(b)}; median extra income a "
                 f"woman needs {_gap(b['gap_median'])}")  # fmt: skip
    cost = -100 * b["accuracy_cost"]
    paid = f"at {cost:.1f} points" if cost >= 0 else f"gaining {-cost:.1f} points"
    sandbox = ""
    if b.get("accuracy_repaid") is not None and u.get("accuracy_repaid") is not None:
        sandbox = (f"; against who actually repaid ({SANDBOX}) it is right for "
                   f"{b['accuracy_repaid']:.1%} of applicants, the naive model for "
                   f"{u['accuracy_repaid']:.1%}")  # fmt: skip
    return (
        f"- **What the default buys: one rule for everyone.** The default policy, `lda`, is "
        f"the attribute-blind alternative the same training run searched for "
        f"({lda['candidates']} candidates; {lda['outcome']}: `{lda['chosen']}`): a model that "
        f"reads no protected attribute, with one cut-off for everyone (score > "
        f"{lda['threshold']:.4f}). {twins} (probe four-fifths ratio "
        f"{ratio(b['probe_four_fifths'])}). On the test split its demographic parity ratio is "
        f"{b['test_dp_ratio']:.3f} (the naive model at 0.5: {u['test_dp_ratio']:.3f}; the blind "
        f"baseline `{lda['baseline']}`: {lda['baseline_test_dp_ratio']:.3f}), {paid} of "
        f"accuracy measured against the biased historical labels{sandbox}."
    )


def bullets(data: dict[str, Any]) -> list[str]:
    m, t, modes = data["modes"], data["thresholds"], _modes(data)
    u, d, r = m["unmitigated"], m["mitigated"], m["randomized"]
    flips = _compare(u["flip_rate"], d["flip_rate"], "the flips")
    if _direction(u) != _direction(d) and "none" not in (_direction(u), _direction(d)):
        share = "all" if min(d["favours_man"], d["favours_woman"]) == 0 else "mostly"
        flips += f" and change direction ({share} favouring the {_direction(d)} now)"
    same_sign = (u["gap_median"] > 0) == (d["gap_median"] > 0)
    gap = f"the median extra income a woman needs goes from {_gap(u['gap_median'])} to " + (
        _gap(d["gap_median"]) + ("" if same_sign else ": she now needs less than her twin")
    )
    alerts = ["FairgateCounterfactualFlips", "FairgateGap", "FairgateProbeFourFifthsBreach"]
    every = COUNT.get(len(modes), f"all {len(modes)}")
    fired = {
        name: [mode for mode in modes if m[mode]["alerts"][name]]
        or [f"none of the {every.removeprefix('all ')}"]
        for name in alerts
    }
    # Flips are evidence of bias only while identical pairs agree (the control).
    if all(m[mode]["control_flip_rate"] == 0 for mode in modes):
        control = f"the control is 0 in {every}, so the flips are the attribute's doing, not noise"
    else:
        control = "the control is not 0 everywhere, so some flips may be noise, not the attribute"
    return [
        *([_lda_bullet(data)] if "lda" in m else []),
        f"- **What group thresholds buy: group parity.** The `mitigated` policy approves women "
        f"above a score of {t[WOMAN]:.2f} and men above {t[MAN]:.2f}, so on the test split "
        f"women are approved at {d['test_approval'][WOMAN]:.1%} and men at "
        f"{d['test_approval'][MAN]:.1%} (demographic parity ratio {u['test_dp_ratio']:.2f} -> "
        f"{d['test_dp_ratio']:.3f}), at "
        f"{-100 * d['accuracy_cost']:.1f} points of accuracy measured against the biased "
        f"historical labels (fairlearn's randomized rule: {-100 * r['accuracy_cost']:.1f} "
        f"points, ratio {r['test_dp_ratio']:.3f}).",
        f"- **What they cost: counterfactual flips.** The naive model scores a woman "
        f"{abs(u['twin_score_difference']):.3f} "
        f"{'lower' if u['twin_score_difference'] < 0 else 'higher'} than her identical male twin "
        f"on average (mean twin score difference). Different thresholds on different scores do "
        f"not make identical people equal: compared with one 0.5 threshold, {flips}, and "
        f"{gap}. The randomized rule flips {_flips(r)}.",
        f"- **Which alerts fire** (lines from `monitoring/prometheus/rules/alerts.yml`): "
        f"`FairgateCounterfactualFlips` on {', '.join(fired['FairgateCounterfactualFlips'])}; "
        f"`FairgateGap` on {', '.join(fired['FairgateGap'])}; "
        f"`FairgateProbeFourFifthsBreach` on {', '.join(fired['FairgateProbeFourFifthsBreach'])} "
        f"({control}).",
    ]


def intro(data: dict[str, Any]) -> str:
    probe_defaults = data["probe_settings"]
    return (
        f"One run: `fairgate train {' '.join(TRAIN_ARGS)}` (the naive {data['model']} "
        f"model, gender as a feature, on the default `{data['bias_preset']}` book where women "
        f"were historically approved only from ${data['bias_gap_dollars']:,.0f} more income; "
        f"`lda` serves the blind model the same run's search chose instead), "
        f"served once per policy mode and probed with the default prober settings "
        f"({probe_defaults['pairs']:,} twin pairs, income gap on {probe_defaults['gap_sample']} "
        f"applicants, control {probe_defaults['control_pairs']}, seed {probe_defaults['seed']}):"
    )


def render(data: dict[str, Any]) -> str:
    readme = [
        intro(data), "", "```bash", *commands(), "```", "",
        *table(data), "", *bullets(data),
    ]  # fmt: skip
    derived = [
        f"- deterministic thresholds (mitigated): women > {data['thresholds'][WOMAN]:.4f}, "
        f"men > {data['thresholds'][MAN]:.4f}",
        f"- randomized rules: women {data['randomized_rules'][WOMAN]}; "
        f"men {data['randomized_rules'][MAN]}",
    ]
    if "lda" in data:
        lda = data["lda"]
        derived.append(
            f"- lda rule: `{lda['chosen']}` ({lda['outcome']}, {lda['candidates']} candidates), "
            f"everyone > {lda['threshold']:.4f}"
        )
    for mode in _modes(data):
        row = data["modes"][mode]
        derived.append(
            f"- {mode}: accuracy cost {row['accuracy_cost']:+.2%}, mean twin score difference "
            f"(woman - man) {row['twin_score_difference']:+.4f}, flip rate {_flips(row)}, income "
            f"gap median {_gap(row['gap_median'])} / p90 {_gap(row['gap_p90'])}, control "
            f"{rate(row['control_flip_rate'])} of {row['control_pairs']}, decisions sent "
            f"{row['decisions_sent']:,}"
        )
    return "\n".join([
        "# What the policies buy and what they cost",
        "",
        "Written by `python scripts/tradeoff.py`; do not edit. The part under "
        f'"{README_HEADING[3:]}" is spliced into README.md by `python scripts/readme.py`.',
        f"Training: {data['rows']:,} rows (test split {data['test_rows']:,}), seed "
        f"{data['training_seed']}. The randomized server's draw key is fixed in the script so "
        "the run repeats; a deployment's own secret key gives other draws.",
        "",
        README_HEADING,
        "",
        *readme,
        "",
        "## Derived figures",
        "",
        *derived,
        "",
        "## Data",
        "",
        "```json",
        json.dumps(data, indent=2, sort_keys=True),
        "```",
        "",
    ])  # fmt: skip


def main() -> None:
    from monitoring.config import config_from_mapping

    started = time.monotonic()
    alert_lines()  # before minutes of training and probing, not after
    defaults = config_from_mapping({})
    probe_defaults = {name: getattr(defaults, name)
                      for name in ("pairs", "gap_sample", "control_pairs", "seed")}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fairgate-tradeoff-") as home:
        # The servers and the prober share one probe token (a probe without it is refused).
        token = os.environ.get("FAIRGATE_PROBE_TOKEN") or secrets.token_urlsafe(32)
        env = os.environ | {"BENTOML_HOME": home, "BENTOML_DO_NOT_TRACK": "True",
                            "FAIRGATE_PROBE_TOKEN": token}  # fmt: skip
        metrics = train(home, env)
        probes = {mode: probe(mode, home, env) for mode in MODES}
    data = figures(metrics, probes, probe_defaults)
    PATH.write_text(render(data))
    print(f"wrote {PATH.relative_to(REPO)} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
