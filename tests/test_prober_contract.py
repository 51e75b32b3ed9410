"""The prober on a contract unlike the default: no income, a three-value category attribute,
a banded numeric one, a gap field where less is better, string labels.

A fake endpoint with a known rule: approve iff debt < LIMIT, or < LIMIT - PENALTY for
region "south". Every expected figure follows from that rule and the cycle's own synthetic
applicants (its inputs), by hand: the flip rate is the share with debt in
[LIMIT - PENALTY, LIMIT), the gap is PENALTY euros of debt, and the age bands never flip.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fairgate.config_error import ConfigError
from fairgate.contract import contract_to_mapping, parse_contract
from fairgate.contract_synth import Synthesis, record_marginals, synthesize
from fairgate.policy import GroupRule, ThresholdPolicy
from monitoring.audit import as_dict, markdown, print_audit
from monitoring.client import DecisionClient
from monitoring.config import config_from_mapping
from monitoring.counterfactual import probe_population
from monitoring.exporter import ProberMetrics
from monitoring.gap import measure_gap
from monitoring.runner import probe_once
from monitoring.target import target_from_contract, target_from_policy
from service.server_process import free_port, wait_http

CONTRACT_TEXT = """
name = "rental"
[[fields]]
name = "ref"
type = "id"
example = "R-1"
[[fields]]
name = "debt"
type = "number"
unit = "euros"
example = 9000.0
constraints = { minimum = 0, maximum = 100000 }
[[fields]]
name = "region"
type = "category"
example = "north"
constraints = { enum = ["south", "north", "east"] }
[[fields]]
name = "age_years"
type = "integer"
example = 40
constraints = { minimum = 18, maximum = 99 }
[label]
column = "outcome"
approved = ["paid"]
denied = ["defaulted"]
[[protected]]
name = "region"
field = "region"
[[protected]]
name = "age_group"
field = "age_years"
edges = [30, 60]
labels = ["young", "middle", "senior"]
representatives = [25, 45, 70]
[groups]
policy = ["region"]
audit = ["region", "age_group"]
prober = ["region", "age_group"]
[[features]]
name = "debt"
transform = "log1p"
field = "debt"
monotone = -1
[gap]
field = "debt"
direction = -1
unit = "euros"
"""
CONTRACT = parse_contract(CONTRACT_TEXT)
LIMIT, PENALTY, WIDTH = 10_000.0, 2_000.0, 0.02
# The endpoint's score: 1 - debt / (2 LIMIT), so its rule is a threshold on the score.
THRESHOLD = {"south": 1 - (LIMIT - PENALTY) / (2 * LIMIT), "north": 0.5, "east": 0.5}


def book(n: int = 20_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {
        "ref": np.array([f"R-{i}" for i in range(n)], dtype=object),
        "debt": np.round(rng.lognormal(np.log(9_000), 0.5, n), 2),
        "region": rng.choice(np.array(["south", "north", "east"], dtype=object), n),
        "age_years": rng.integers(18, 90, n),
    }


def synthesis() -> Synthesis:
    source = book()
    near = np.abs(source["debt"] - LIMIT) < 1500
    boundary = record_marginals(CONTRACT, {k: v[near] for k, v in source.items()})
    return Synthesis(record_marginals(CONTRACT, source), boundary, int(near.sum()), WIDTH)


POLICY = ThresholdPolicy(
    attributes=("region",),
    rules={g: GroupRule.threshold(t) for g, t in THRESHOLD.items()},
    unseen=GroupRule.threshold(0.5),
    unseen_rule="most-lenient",
    constraint="demographic_parity",
    objective="accuracy_score",
    mode="mitigated",
)
PAYLOAD = {
    "contract": contract_to_mapping(CONTRACT),
    "synthesis": synthesis().to_dict(),
    "policy": POLICY.to_dict(),
}


def app(received: list[dict], payload: dict | None, penalty: float) -> Starlette:
    async def decide(request: Request):
        decisions = []
        for a in (await request.json())["applications"]:
            assert set(a) == set(CONTRACT.field_names)  # the contract's fields, nothing else
            received.append(a)
            limit = LIMIT - (penalty if a["region"] == "south" else 0.0)
            score = 1 - a["debt"] / (2 * LIMIT)
            decisions.append({"approved": a["debt"] < limit, "score": score, "group": a["region"]})
        return JSONResponse({"decisions": decisions})

    async def published(_: Request):
        return JSONResponse(payload)

    routes = [Route("/decide_batch", decide, methods=["POST"])]
    routes.append(Route("/readyz", lambda _: PlainTextResponse("ok")))
    if payload is not None:
        routes.append(Route("/policy/", published))
    return Starlette(routes=routes)


@pytest.fixture
def serve():
    servers = []

    def start(
        *, policy: bool, payload: dict = PAYLOAD, penalty: float = PENALTY
    ) -> tuple[str, list[dict]]:
        """An endpoint with the known rule; ``policy``: it publishes ``payload`` on
        GET /policy; ``penalty`` 0 makes it fair."""
        received: list[dict] = []
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app(received, payload if policy else None, penalty),
                           host="127.0.0.1", port=port, log_level="error")
        )  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_http(f"http://127.0.0.1:{port}/readyz", 20)
        return f"http://127.0.0.1:{port}", received

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_figures_in_the_contracts_own_terms_from_its_policy_endpoint(serve):
    url, received = serve(policy=True)
    registry = CollectorRegistry()
    config = config_from_mapping({"target": url, "pairs": 1000, "gap_sample": 60, "seed": 2})
    result = probe_once(config, ProberMetrics(registry), 0, DecisionClient(url))
    # True counts: every decision asked for reached the endpoint, and no more.
    assert result.decisions_sent == len(received) > 0
    counted = registry.get_sample_value("fairgate_probe_decisions_sent_total", {"target": url})
    assert counted == len(received)
    assert result is not None and result.contract == "rental"
    # The cycle's inputs, regenerated: the same seeded synthetic applicants.
    target = target_from_policy(PAYLOAD, url)
    base = probe_population(target, 1000, seed=config.seed * 1_000_003)
    debt = base["debt"]
    in_band = (debt >= LIMIT - PENALTY) & (debt < LIMIT)
    assert 0.1 < in_band.mean() < 0.6  # the boundary summaries made the probes informative
    region = next(a for a in result.attributes if a.attribute == "region")
    pairs = {(p.group_a, p.group_b): p for p in region.pairs}
    assert set(pairs) == {("south", "north"), ("south", "east"), ("north", "east")}
    assert pairs["south", "north"].flip_rate == pytest.approx(in_band.mean(), abs=1e-12)
    assert pairs["south", "north"].favours_b_rate == pytest.approx(in_band.mean(), abs=1e-12)
    assert pairs["north", "east"].flip_rate == 0
    age = next(a for a in result.attributes if a.attribute == "age_group")
    assert set(age.approval_rate) == {"young", "middle", "senior"}
    assert all(p.flip_rate == 0 for p in age.pairs)
    # Less debt helps (direction -1): south needs PENALTY euros less debt than north.
    gap = result.gap
    assert (gap.field, gap.unit, gap.group_a, gap.group_b) == ("debt", "euros", "south", "north")
    assert gap.measured == 60 and gap.non_monotone == 0
    assert gap.median == pytest.approx(PENALTY, rel=0.01)
    # Near a threshold: the applicant's own score within WIDTH of its region's threshold,
    # i.e. debt within 2 LIMIT WIDTH of LIMIT - PENALTY (south) or of LIMIT (north, east).
    reach = 2 * LIMIT * WIDTH
    own_limit = np.where(base["region"] == "south", LIMIT - PENALTY, LIMIT)
    near = np.abs(debt - own_limit) <= reach
    assert 0 < near.sum() < 1000
    assert result.population.near_boundary == int(near.sum())
    assert result.population.size == 1000
    # The deterministic endpoint passes the control: the same applicants, the same answers.
    assert (result.control.pairs, result.control.flips) == (200, 0)
    assert result.gap_skipped is None
    assert result.population.from_boundary == 500
    # The summary gives the gap in euros of debt and as a share of the book's median debt.
    console = Console(record=True, width=80)
    print_audit(result, console)
    printed = console.export_text()
    assert "debt gap (less needed by south than by north):" in printed
    typical = PAYLOAD["synthesis"]["population"]["quantiles"]["debt"][100]
    assert 0.2 < PENALTY / typical < 0.3  # the book's median debt is near 9,000 euros
    (printed_share,) = re.findall(r"median (\d\.\d{3}) x the book's median debt", printed)
    assert float(printed_share) == pytest.approx(PENALTY / typical, rel=0.01)
    labels = {"target": url, "attribute": "region", "group_a": "south", "group_b": "north"}
    assert registry.get_sample_value(
        "fairgate_probe_gap", labels | {"quantile": "0.5", "field": "debt", "unit": "euros"}
    ) == pytest.approx(PENALTY, rel=0.01)
    assert registry.get_sample_value(
        "fairgate_probe_near_boundary_ratio", {"target": url}
    ) == pytest.approx(near.mean())


def test_a_foreign_endpoint_is_audited_from_a_contract_file(serve, tmp_path):
    url, received = serve(policy=False)
    path = tmp_path / "rental.toml"
    path.write_text(CONTRACT_TEXT)
    # Without --contract the prober says what is missing.
    config = config_from_mapping({"target": url, "pairs": 200, "gap_sample": 0})
    assert probe_once(config, None, 0, DecisionClient(url)) is None
    config = config_from_mapping(
        {"target": url, "pairs": 400, "gap_sample": 30, "contract": str(path), "seed": 1}
    )
    registry = CollectorRegistry()
    result = probe_once(config, ProberMetrics(registry), 0, DecisionClient(url))
    assert result is not None
    # The gap in euros needs no book; its ratio to the book's median does, and there is no
    # book: no ratio rather than one against the contract's bounds.
    assert result.gap.measured == 30 and result.gap.median == pytest.approx(PENALTY, rel=0.01)
    assert np.isnan(result.gap.median_ratio)
    names = {s.name for m in registry.collect() for s in m.samples}
    assert "fairgate_probe_gap" in names and "fairgate_probe_gap_ratio" not in names
    console = Console(record=True, width=80)
    print_audit(result, console)
    printed = console.export_text()
    assert "no recorded book: the median is not scaled" in printed
    # On one line of an 80-column terminal, not wrapped by it.
    assert "  near a threshold when decided: unknown (no policy or boundary width known)\n" in (
        printed
    )
    base = probe_population(target_from_contract(path, url), 400, seed=1_000_003)
    in_band = (base["debt"] >= LIMIT - PENALTY) & (base["debt"] < LIMIT)
    region = next(a for a in result.attributes if a.attribute == "region")
    south_north = next(p for p in region.pairs if (p.group_a, p.group_b) == ("south", "north"))
    assert south_north.flip_rate == pytest.approx(in_band.mean(), abs=1e-12)
    # No policy known: nothing can be said about the boundary, and nothing is made up.
    assert result.population.near_boundary is None and result.population.from_boundary == 0
    assert {a["region"] for a in received} == {"south", "north", "east"}


def test_missing_policy_endpoint_names_the_fix(serve, caplog):
    url, _ = serve(policy=False)
    config = config_from_mapping({"target": url, "pairs": 10, "gap_sample": 0})
    with caplog.at_level("WARNING", logger="fairgate.prober"):
        assert probe_once(config, None, 0, DecisionClient(url)) is None
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fairgate.prober"]
    assert "kind=http_4xx" in line and "--contract FILE" in line


def test_fair_endpoint_gives_no_flips_and_no_gap_on_the_second_contract(serve):
    url, received = serve(policy=True, penalty=0.0)
    config = config_from_mapping({"target": url, "pairs": 600, "gap_sample": 40, "seed": 3})
    result = probe_once(config, None, 0, DecisionClient(url))
    assert result is not None
    assert [p.flip_rate for a in result.attributes for p in a.pairs] == [0.0] * (3 + 3)
    assert all(len(set(a.approval_rate.values())) == 1 for a in result.attributes)
    assert result.gap.measured == 40 and result.gap.median == pytest.approx(0, abs=1.0)
    assert result.control.flip_rate == 0 and result.decisions_sent == len(received)


def test_a_contract_without_a_gap_field_measures_none_and_says_so(serve):
    text = CONTRACT_TEXT[: CONTRACT_TEXT.index("[gap]")]
    contract = parse_contract(text)
    assert contract.gap is None
    payload = dict(PAYLOAD, contract=contract_to_mapping(contract))
    url, received = serve(policy=True, payload=payload)
    registry = CollectorRegistry()
    config = config_from_mapping({"target": url, "pairs": 300, "gap_sample": 50, "seed": 5})
    result = probe_once(config, ProberMetrics(registry), 0, DecisionClient(url))
    assert result is not None and result.gap is None
    assert result.gap_skipped == "no gap: contract 'rental' names no gap field"
    # Twins and control only: 3 regions + 3 age bands, x 300, and 200 applicants twice.
    assert result.decisions_sent == len(received) == 6 * 300 + 2 * 200
    console = Console(record=True, width=80)
    print_audit(result, console)
    printed = console.export_text()
    assert "no gap: contract 'rental' names no gap field" in printed
    assert "gap (" not in printed  # no gap section
    assert as_dict(result)["gap"] is None
    assert "names no gap field" in markdown(result)
    names = [s.name for m in registry.collect() for s in m.samples]
    gap_samples = [name for name in names if name.startswith("fairgate_probe_gap")]
    assert gap_samples == []  # no gap metric, not even a stale or NaN one


def test_gap_in_an_integer_field_where_less_helps_is_exact():
    """A loan term in whole months: approved iff months <= 24, or <= 20 for region south.
    South needs 4 months less; the search lands on whole months, so the gap is exactly 4."""
    text = CONTRACT_TEXT.replace(
        'field = "debt"\ndirection = -1\nunit = "euros"',
        'field = "months"\ndirection = -1\nunit = "months"',
    ).replace(
        "[[fields]]\nname = \"region\"",
        '[[fields]]\nname = "months"\ntype = "integer"\nexample = 12\n'
        "constraints = { minimum = 4, maximum = 72 }\n\n[[fields]]\nname = \"region\"",
    )
    contract = parse_contract(text)
    rng = np.random.default_rng(11)
    source = dict(book(4_000), months=rng.integers(4, 60, 4_000))
    marginals = record_marginals(contract, source)

    def decide(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        assert columns["months"].dtype.kind == "i"  # never a fraction of a month
        limit = np.where(columns["region"] == "south", 20, 24)
        approved = columns["months"] <= limit
        return approved, approved.astype(float)

    sample = {k: v[:30] for k, v in synthesize(contract, marginals, 30, seed=1).items()}
    gap = measure_gap(
        decide, contract, marginals, sample, attribute="region", group_a="south", group_b="north"
    )
    assert (gap.field, gap.unit, gap.direction) == ("months", "months", -1)
    assert gap.measured == 30 and gap.non_monotone == 0 and gap.never_approved == 0
    assert gap.median == 4 and gap.p90 == 4
    assert set(gap.gaps.tolist()) == {4.0}


def test_a_bad_contract_file_is_reported_with_the_other_bad_entries(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(CONTRACT_TEXT.replace('type = "number"', 'type = "money"'))
    for path, says in ((tmp_path / "absent.toml", "no such file"), (broken, "money")):
        with pytest.raises(ConfigError) as error:
            config_from_mapping({"contract": str(path), "boundary_share": "-0.1", "pairs": "x"})
        message = str(error.value)
        assert "contract: " in message and says in message
        assert "boundary_share: must be between 0 and 1" in message and "pairs: " in message
