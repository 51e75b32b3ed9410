"""The prober on a contract unlike the default: no income, a three-value category attribute,
a banded numeric one, a gap field where less is better, string labels.

A fake endpoint with a known rule: approve iff debt < LIMIT, or < LIMIT - PENALTY for
region "south". Every expected figure follows from that rule and the cycle's own synthetic
applicants (its inputs), by hand: the flip rate is the share with debt in
[LIMIT - PENALTY, LIMIT), the gap is PENALTY euros of debt, and the age bands never flip.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fairgate.contract import contract_to_mapping, parse_contract
from fairgate.contract_synth import Synthesis, record_marginals
from fairgate.policy import GroupRule, ThresholdPolicy
from monitoring.client import DecisionClient
from monitoring.config import config_from_mapping
from monitoring.counterfactual import probe_population
from monitoring.exporter import ProberMetrics
from monitoring.runner import probe_once
from monitoring.target import target_from_contract, target_from_policy
from tests.conftest import free_port, wait_http

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


def app(received: list[dict], *, policy: bool) -> Starlette:
    async def decide(request: Request):
        decisions = []
        for a in (await request.json())["applications"]:
            assert set(a) == set(CONTRACT.field_names)  # the contract's fields, nothing else
            received.append(a)
            limit = LIMIT - (PENALTY if a["region"] == "south" else 0.0)
            score = 1 - a["debt"] / (2 * LIMIT)
            decisions.append({"approved": a["debt"] < limit, "score": score, "group": a["region"]})
        return JSONResponse({"decisions": decisions})

    async def published(_: Request):
        return JSONResponse(PAYLOAD)

    routes = [Route("/decide_batch", decide, methods=["POST"])]
    routes.append(Route("/readyz", lambda _: PlainTextResponse("ok")))
    if policy:
        routes.append(Route("/policy/", published))
    return Starlette(routes=routes)


@pytest.fixture
def serve():
    servers = []

    def start(*, policy: bool) -> tuple[str, list[dict]]:
        received: list[dict] = []
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app(received, policy=policy), host="127.0.0.1", port=port,
                           log_level="error")
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
    url, _ = serve(policy=True)
    registry = CollectorRegistry()
    config = config_from_mapping({"target": url, "pairs": 1000, "gap_sample": 60, "seed": 2})
    result = probe_once(config, ProberMetrics(registry), 0, DecisionClient(url))
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
    # Near a threshold: some twin within WIDTH of its group's threshold in score, i.e.
    # debt within 2 LIMIT WIDTH of LIMIT (north, east) or of LIMIT - PENALTY (south).
    reach = 2 * LIMIT * WIDTH
    near = (np.abs(debt - LIMIT) <= reach) | (np.abs(debt - (LIMIT - PENALTY)) <= reach)
    assert result.population.near_boundary == int(near.sum())
    assert result.population.from_boundary == 500
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
        {"target": url, "pairs": 400, "gap_sample": 0, "contract": str(path), "seed": 1}
    )
    result = probe_once(config, None, 0, DecisionClient(url))
    assert result is not None
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
