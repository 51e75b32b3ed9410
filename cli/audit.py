"""``fairgate audit``: the live fairness figures recomputed from the decision record.

Live traffic only (probes are recorded, flagged, and left out), grouped as the training
audit groups (``training.pipeline.groupings``: each audit attribute of the served contract
alone, and the policy's grouping) and measured by the same code (``training.fairness``,
fairlearn's ``MetricFrame``): approval rate per group and the four-fifths ratio (lowest
group rate over highest) for each grouping. Each model's contract comes from the model store
(``BENTOML_HOME``), by the model version every record carries.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from cli.errors import fail

FOUR_FIFTHS = 0.8


def request_columns(contract: Any, requests: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The protected fields of recorded requests, as the service's columns hold them."""
    columns: dict[str, np.ndarray] = {}
    for attribute in contract.protected:
        values = [request[attribute.field] for request in requests]
        numeric = contract.field(attribute.field).numeric
        columns[attribute.field] = np.asarray(values, dtype=np.float64 if numeric else object)
    return columns


def audit_rows(
    rows: Iterable[Any], contracts: dict[str, tuple[Any, tuple[str, ...]]]
) -> dict[str, Any]:
    """Fairness of the live rows, per grouping; ``contracts`` maps a model version to its
    contract and policy attributes. Models sharing a contract are audited together."""
    from fairgate.contract import contract_to_mapping
    from training.fairness import selection_fairness
    from training.pipeline import groupings

    by_contract: dict[tuple[str, tuple[str, ...]], list[Any]] = defaultdict(list)
    known: dict[tuple[str, tuple[str, ...]], Any] = {}
    probes = 0
    for row in rows:
        if row.probe:
            probes += 1
            continue
        contract, attributes = contracts[row.model_version]
        key = (json.dumps(contract_to_mapping(contract), sort_keys=True), attributes)
        known.setdefault(key, contract)
        by_contract[key].append(row)
    audits = []
    for key, found in by_contract.items():
        contract, attributes = known[key], key[1]
        columns = request_columns(contract, [row.request_data() for row in found])
        approved = np.asarray([row.decision == "approve" for row in found], dtype=np.float64)
        grouped = groupings(contract, columns, attributes, contract.groups.audit)
        audits.append({
            "contract": contract.name,
            "model_versions": sorted({row.model_version for row in found}),
            "decisions": len(found),
            "groups": {
                name: selection_fairness(approved, keys, n_boot=200, seed=0)
                for name, keys in grouped.items()
            },
        })  # fmt: skip
    return {"probes_excluded": probes, "audits": audits}


def floor3(value: float) -> str:
    """A ratio floored, never rounded across the 0.8 line (0.7996 prints 0.799)."""
    return "n/a" if math.isnan(value) else f"{math.floor(value * 1000) / 1000:.3f}"


def print_audit(result: dict[str, Any], since: datetime | None, until: datetime | None) -> None:
    window = f"{since.isoformat() if since else 'start'} to {until.isoformat() if until else 'now'}"
    probes = result["probes_excluded"]
    typer.echo(f"live decisions from the record, {window} ({probes:,} probes left out)")
    if not result["audits"]:
        typer.echo("no live decisions in this window")
    for audit in result["audits"]:
        typer.echo(f"\ncontract {audit['contract']}: {audit['decisions']:,} live decisions "
              f"({', '.join(audit['model_versions'])})")  # fmt: skip
        for name, figures in audit["groups"].items():
            ratio = figures["demographic_parity_ratio"]
            flag = "  BELOW 0.8" if ratio < FOUR_FIFTHS else ""
            typer.echo(f"  {name}: four-fifths ratio {floor3(ratio)}{flag}")
            for group, row in figures["by_group"].items():
                typer.echo(f"    {group:24} {int(row['count']):>9,} decisions  "
                      f"approval {row['selection_rate']:.1%}")  # fmt: skip


def _contracts(versions: set[str]) -> dict[str, tuple[Any, tuple[str, ...]]]:
    from fairgate.artifacts import ArtifactError, load_serving_bundle

    found = {}
    for version in sorted(versions):
        try:
            # Only the contract and the policy's attributes are read, which every mode has;
            # "mitigated" loads for any model (one trained without the LDA search too).
            bundle = load_serving_bundle(version, "mitigated")
        except ArtifactError as error:
            fail(f"the record names model {version}, which the model store cannot give: {error}")
        found[version] = (bundle.contract, tuple(bundle.policy.attributes))
    return found


def audit(
    record_url: Annotated[
        str | None,
        typer.Option(
            "--record",
            help="The record's URL (default: FAIRGATE_RECORD_URL, else "
            "./fairgate-data/record.sqlite, as `fairgate serve` writes it).",
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="From: a date (2026-01-31) or a duration ago (1h, 30d).")
    ] = "30d",
    until: Annotated[str | None, typer.Option(help="Up to, excluded (default: now).")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here.")
    ] = None,
) -> None:
    """Approval rate per group and the four-fifths ratio for each protected attribute,
    recomputed from the decision record's live decisions (probes excluded) with the
    training audit's code."""
    from cli.record import moment_option, open_existing_record
    from record.store import store_errors

    low, high = moment_option(since, "--since"), moment_option(until, "--until")
    store = open_existing_record(record_url)
    try:
        with store:
            rows = list(store.rows_between(low, high))
    except store_errors() as error:
        fail(f"cannot read the record: {error}")
    contracts = _contracts({row.model_version for row in rows if not row.probe})
    result = audit_rows(rows, contracts)
    result["since"] = low.isoformat() if low else None
    result["until"] = (high or datetime.now(UTC)).isoformat()
    print_audit(result, low, high)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
        typer.echo(f"wrote {json_path}")
