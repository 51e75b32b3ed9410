"""The monitoring stack for real: bentoml serve, the prober process and a Prometheus server.

After a few probe cycles and some live traffic, every dashboard panel's query must return
data from Prometheus because of real series, the policy-change annotation must mark a
promotion and nothing before it, and the live-traffic counters must count exactly the live
requests. Twice: on the default book's contract, and on a second one unlike it (the German
credit book: other fields, banded age, a four-value category, a gap field where less helps),
so no rule or panel leans on the default book's names.
"""

import json
import os
import re
import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fairgate.generator import generate_applicants, to_records
from loadtests.pool import target_pool
from monitoring.client import DecisionClient
from monitoring.prober import ProbeSettings, run_cycle
from monitoring.target import fetch_target
from record.url import default_record_url
from service.launch import REPO
from tests.conftest import LiveService, ProberProcess, PrometheusServer

pytestmark = pytest.mark.integration

DASHBOARD_TEXT = (REPO / "monitoring/grafana/dashboards/fairgate.json").read_text()
DASHBOARD = json.loads(DASHBOARD_TEXT)
TEMPLATE_VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")
# What Grafana's Prometheus data source escapes when it puts a value into a regex matcher.
REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|{}\[\]])")
LIVE_ROUNDS, SINGLES, BATCH = 6, 5, 40
# A group the policy never saw at training, so the fallback-rule series is real live data.
UNSEEN_GENDER = "nonbinary"
# "... or vector(0)" returns a value with no series at all: a panel query must not lean
# on it to "return data".
VACUOUS_FALLBACK = re.compile(r"\s+or\s+vector\([^)]*\)\s*$")


def panel_queries() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
    ]


ANNOTATIONS = {a["name"]: a for a in DASHBOARD["annotations"]["list"]}
POLICY_CHANGES = ANNOTATIONS["Policy changes"]


def _seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration).groups()
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def rate_interval(prometheus: PrometheusServer) -> str:
    """Grafana's ``$__rate_interval`` for a short dashboard range: 4 x the scrape interval."""
    config = yaml.safe_load(prometheus.config_path.read_text())
    return f"{4 * _seconds(config['global']['scrape_interval']):g}s"


def regex_escaped(value: str) -> str:
    """A value as Grafana puts it into ``label=~"..."``: regex-escaped, then a PromQL string."""
    return REGEX_SPECIALS.sub(r"\\\\\1", value)


def variable_values(prometheus: PrometheusServer, name: str) -> list[str]:
    """The values Grafana offers for a template variable: its ``label_values`` query, sent
    the way Grafana sends it (the label-values API), with the other variables at "All"."""
    match = LABEL_VALUES.fullmatch(TEMPLATE_VARIABLES[name]["query"]["query"])
    assert match, f"variable {name}: not a label_values query"
    selector = re.sub(r"\$\w+", ".*", match["selector"])
    response = httpx.get(
        f"{prometheus.url}/api/v1/label/{match['label']}/values",
        params={"match[]": selector},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["data"]


def as_grafana_sends(
    expr: str, prometheus: PrometheusServer, chosen: dict[str, str] | None = None
) -> str:
    """``expr`` with the template variables as Grafana fills them in: a repeated panel's
    variable at one value, multi-value variables at "All", single-value ones at the first
    value offered (Grafana's default)."""
    chosen = chosen or {}
    # Longest names first: "$attribute" must not eat the start of "$attribute_x".
    for name in sorted(TEMPLATE_VARIABLES, key=len, reverse=True):
        if name in chosen:
            value = regex_escaped(chosen[name])
        elif TEMPLATE_VARIABLES[name].get("includeAll"):
            value = TEMPLATE_VARIABLES[name]["allValue"]
        else:
            offered = variable_values(prometheus, name)
            value = regex_escaped(offered[0]) if offered else ""
        expr = expr.replace(f"${name}", value)
    return expr.replace("$__rate_interval", rate_interval(prometheus))


def live_records(contract: str, url: str, n: int) -> list[dict]:
    if contract == "german":
        # Applicants like the German book's, from the service's own GET /policy.
        return target_pool(url, n).singles
    records = to_records(generate_applicants(n, seed=404))
    for record in records[::9]:
        record["gender"] = UNSEEN_GENDER
    return records


@pytest.fixture(scope="module", params=["synthetic", "german"])
def stack(request, tmp_path_factory):
    model = request.getfixturevalue("trained" if request.param == "synthetic" else "german_trained")
    # A record of its own: the annotation test promotes a policy in this record's policy
    # store, which no other test's server may pick up.
    data = tmp_path_factory.mktemp("record")
    service = LiveService(model.tag, workers=1, FAIRGATE_DATA_DIR=str(data)).wait()
    prober = ProberProcess(service.url, "--interval", "1", "--pairs", "200", "--gap-sample", "20")
    prometheus = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        service=f"127.0.0.1:{service.port}",
        prober=f"127.0.0.1:{prober.port}",
    )
    try:
        for job in ("fairgate-service", "fairgate-prober"):
            assert prometheus.wait_for(f'up{{job="{job}"}} == 1', 30), f"{job} not scraped"
        # Live traffic spread over several scrapes, so rates have two points to work with.
        records = live_records(request.param, service.url, LIVE_ROUNDS * (SINGLES + BATCH))
        sent = 0
        with httpx.Client(base_url=service.url, timeout=10) as client:
            for _ in range(LIVE_ROUNDS):
                for _ in range(SINGLES):
                    assert client.post("/decide", json=records[sent]).status_code == 200
                    sent += 1
                batch = records[sent : sent + BATCH]
                response = client.post("/decide_batch", json={"applications": batch})
                assert response.status_code == 200
                sent += BATCH
                time.sleep(0.7)
        yield {
            "service": service, "prober": prober, "prometheus": prometheus, "live": sent,
            "contract": request.param, "model": model,
            "record_url": default_record_url({"FAIRGATE_DATA_DIR": str(data)}),
        }  # fmt: skip
    finally:
        prometheus.stop()
        prober.stop()
        service.stop()


def repeated_by(title: str) -> str | None:
    panel = next(p for p in DASHBOARD["panels"] if title.startswith(f"{p['title']} ["))
    return panel.get("repeat")


@pytest.mark.parametrize(("title", "expr"), panel_queries())
def test_every_dashboard_panel_query_returns_data(stack, title, expr):
    """Every panel, and every copy of a repeated panel (one per attribute), shows data."""
    assert not VACUOUS_FALLBACK.search(expr), f"panel {title!r}: 'or vector(0)' hides no data"
    if "fairgate_unseen_group_decisions_total" in expr and stack["contract"] == "german":
        pytest.skip("every German age band was seen at training: no fallback-rule traffic")
    prometheus = stack["prometheus"]
    variable = repeated_by(title)
    copies = [{}]
    if variable:
        copies = [{variable: value} for value in variable_values(prometheus, variable)]
        assert copies, f"panel {title!r}: no {variable} to repeat over"
    for chosen in copies:
        sent = as_grafana_sends(expr, prometheus, chosen)
        result = prometheus.wait_for(sent, timeout=60)
        assert result, f"panel {title!r} {chosen}: {sent} returned nothing"


def _annotation_points(prometheus: PrometheusServer, since: float) -> list[dict]:
    """The policy-change annotation's query as Grafana runs it: a range query over the
    dashboard's window (here from ``since``), one point a second."""
    response = httpx.get(
        f"{prometheus.url}/api/v1/query_range",
        params={
            "query": as_grafana_sends(POLICY_CHANGES["expr"], prometheus),
            "start": since,
            "end": time.time(),
            "step": "1s",
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_the_policy_change_annotation_marks_a_promotion_and_nothing_else(stack):
    """A version promoted in the service's policy store: every time-series panel gets one
    annotation, titled with the version, at the switch; before it, none."""
    from fairgate.artifacts import load_serving_bundle
    from fairgate.policy import ThresholdPolicy
    from record.policy_desk import PolicyDesk
    from record.policy_store import PolicyStore

    prometheus, model = stack["prometheus"], stack["model"]
    assert POLICY_CHANGES["enable"] and POLICY_CHANGES["datasource"]["uid"] == "fairgate-prometheus"
    started = time.time() - 600
    assert _annotation_points(prometheus, started) == [], "an annotation before any change"
    bundle = load_serving_bundle(model.tag, "lda")  # the stack serves the default mode
    desk = PolicyDesk(bundle, PolicyStore.open(stack["record_url"]))
    trained = desk.trained
    moved = ThresholdPolicy.single_threshold(
        attributes=trained.attributes, groups=list(trained.rules),
        threshold=trained.unseen.threshold0 + 0.01, mode=trained.mode,
    )  # fmt: skip
    desk.store.add_version(
        desk.scope, moved.version, parent=trained.version, body={"policy": moved.to_dict()},
        author="test", reason="test_monitoring_stack",
    )  # fmt: skip
    try:
        desk.promote(moved.version, max_move=1.0, force=False, author="test", reason="annotation")
        assert prometheus.wait_for(f'fairgate_policy_info{{version="{moved.version}"}} == 1', 30)
        time.sleep(2)  # a scrape after the switch, and one more for the increase
        points = _annotation_points(prometheus, started)
    finally:
        desk.rollback(author="test", reason="annotation checked")
        desk.store.close()
    assert [r["metric"] for r in points] == [{"version": moved.version, "mode": trained.mode}]
    # One switch: its points are consecutive seconds, one region on the panels.
    stamps = [float(t) for t, _ in points[0]["values"]]
    assert stamps and stamps[-1] - stamps[0] <= 10, stamps


def test_the_annotation_is_the_query_the_rule_tests_check():
    """monitoring/prometheus/tests/alerts_test.yml checks the annotation's query at the
    minute of a promotion, with $__rate_interval at 1m."""
    rule_tests = (REPO / "monitoring/prometheus/tests/alerts_test.yml").read_text()
    checked = POLICY_CHANGES["expr"].replace("$__rate_interval", "1m")
    assert f"- expr: {checked}\n" in rule_tests


# Per contract: what each template variable must offer (a subset: the prober may probe more).
EXPECTED_VARIABLES = {
    "synthetic": {
        "attribute": {"gender"},
        "group": {"female", "male", "nonbinary"},
        "probe_attribute": {"gender", "age_band"},
        "gap_field": {"annual_income"},
    },
    # The names fairgate init drafts from the German book (bands of age_in_years).
    "german": {
        "attribute": {"age_in_years_band"},
        "group": {"13-24", "25-34", "35-49", "50+"},
        "probe_attribute": {"personal_status_and_sex", "age_in_years_band"},
        "gap_field": {"credit_amount"},
    },
}


def test_every_template_variable_offers_the_contracts_names(stack):
    prometheus = stack["prometheus"]
    assert variable_values(prometheus, "target") == [stack["service"].url]
    for name, expected in EXPECTED_VARIABLES[stack["contract"]].items():
        offered = set(variable_values(prometheus, name))
        assert expected <= offered, f"variable {name}: {sorted(offered)}"


def test_the_dashboard_names_no_attribute_group_or_field_of_a_book():
    """Titles, legends and queries take names from the labels, never from one book."""
    for name in ("gender", "female", "nonbinary", "income", "dollars", "age_band", "credit"):
        assert name not in DASHBOARD_TEXT.lower(), name
    titled = [p["title"] for p in DASHBOARD["panels"] if "$" in p["title"]]
    assert len(titled) >= 5, titled


def test_rate_windows_follow_the_scrape_interval():
    """A fixed ``[1m]`` goes blank when Prometheus scrapes every 30 s or more."""
    for title, expr in panel_queries():
        for window in re.findall(r"\b(?:i?rate)\([^\[]*\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"panel {title!r}: rate window [{window}]"


def test_live_panels_show_live_traffic_only():
    for panel in DASHBOARD["panels"]:
        if not panel["title"].startswith("Live"):
            continue
        for target in panel["targets"]:
            expr = target["expr"]
            assert "fairgate_probe" not in expr, f"{panel['title']!r} reads probe counters"
            if "fairgate_unseen_group_decisions_total" in expr:
                assert 'traffic="live"' in expr, f"{panel['title']!r} counts probes as live"


def test_live_panels_see_a_group_the_policy_never_saw(stack):
    if stack["contract"] != "synthetic":
        pytest.skip("every age band of the German book was seen at training")
    prometheus = stack["prometheus"]
    unseen = prometheus.wait_for(
        as_grafana_sends(
            'sum by (group) (rate(fairgate_unseen_group_decisions_total{traffic="live"}'
            "[$__rate_interval]))",
            prometheus,
        ),
        timeout=30,
    )
    assert {r["metric"]["group"] for r in unseen} == {UNSEEN_GENDER}
    rates = prometheus.wait_for(
        f'group:fairgate_approval:ratio_rate5m{{group="{UNSEEN_GENDER}"}}', timeout=30
    )
    assert rates, "a group with live decisions is missing from the live approval rates"


def test_live_counters_did_not_count_the_probes(stack):
    prometheus = stack["prometheus"]
    probes = prometheus.wait_for(
        f"sum(fairgate_probe_decisions_total) > {stack['live']}", timeout=30
    )
    assert probes, "the prober's requests did not reach the service"
    live = prometheus.wait_for(f"sum(fairgate_decisions_total) == {stack['live']}", timeout=30)
    assert live, prometheus.query("sum(fairgate_decisions_total)")


# Per contract: a probed attribute, a pair of its values, the gap field and its unit.
EXPECTED_LABELS = {
    "synthetic": ("gender", ("female", "male"), "annual_income", "dollars"),
    "german": (
        "personal_status_and_sex",
        ("female : divorced/separated/married", "male : divorced/separated"),
        "credit_amount",
        "DM",
    ),
}


def test_probe_figures_reach_prometheus_with_their_labels(stack):
    prometheus = stack["prometheus"]
    attribute, pair, field, unit = EXPECTED_LABELS[stack["contract"]]
    flips = prometheus.wait_for(f'fairgate_probe_flip_ratio{{attribute="{attribute}"}}', 30)
    assert pair in {(r["metric"]["group_a"], r["metric"]["group_b"]) for r in flips}
    gap = prometheus.wait_for('fairgate_probe_gap{quantile="0.5"}', timeout=30)
    assert gap and gap[0]["metric"]["target"] == stack["service"].url
    assert (gap[0]["metric"]["field"], gap[0]["metric"]["unit"]) == (field, unit)
    live = prometheus.wait_for("group:fairgate_approval:ratio_rate5m", timeout=30)
    policy_attribute = stack["model"].contract.groups.policy[0]
    assert {r["metric"]["attribute"] for r in live} == {policy_attribute}


def _cycle(url: str, settings: ProbeSettings):
    client = DecisionClient(url, token=os.environ["FAIRGATE_PROBE_TOKEN"])
    assert client.client is not None
    return run_cycle(client, fetch_target(client.client, url), settings, cycle=0)


def test_dashboard_shows_bias_unmitigated_and_what_the_thresholds_and_the_default_do(
    stack, trained
):
    """Same model, served three ways: one 0.5 threshold, the group rules, and the default
    (the stack's server): the less discriminatory alternative, blind by construction."""
    if stack["contract"] != "synthetic":
        pytest.skip("the default book is the one with a known injected bias")
    settings = ProbeSettings(pairs=1000, gap_sample=60, attributes=("gender",), seed=3)
    cycles = {}
    for mode in ("unmitigated", "mitigated"):
        server = LiveService(trained.tag, workers=1, FAIRGATE_POLICY=mode).wait()
        try:
            cycles[mode] = _cycle(server.url, settings)
        finally:
            server.stop()
    before, after = cycles["unmitigated"], cycles["mitigated"]
    default = _cycle(stack["service"].url, settings)

    def gender(result):
        return next(a for a in result.attributes if a.attribute == "gender")

    def spread(result):
        rates = gender(result).approval_rate
        return abs(rates["female"] - rates["male"])

    b = gender(before)
    # Unmitigated, the naive model carries the historical bias against women.
    assert b.approval_rate["female"] < b.approval_rate["male"]
    assert b.approval_ratio < 0.8
    assert before.gap.median > 0  # a woman needs more income than her twin
    # The thresholds move group approval towards parity and reverse the income gap.
    assert spread(after) < spread(before)
    assert after.gap.median < before.gap.median
    # The default reads no protected field: no twin is decided differently, no gap, and
    # the approval rates are closer than the naive model's.
    assert all(p.flip_rate == 0 for p in gender(default).pairs)
    assert default.gap is None or default.gap.median == 0
    assert spread(default) < spread(before)


def _prober_sample(prober, name: str) -> float:
    text = httpx.get(f"{prober.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_a_prometheus_restart_affects_neither_the_service_nor_the_prober(stack):
    prometheus, service, prober = stack["prometheus"], stack["service"], stack["prober"]
    prometheus.stop()
    example = stack["model"].contract.example
    sent_before = _prober_sample(prober, "fairgate_probe_pairs_sent_total")
    assert httpx.post(f"{service.url}/decide", json=example, timeout=10).status_code == 200
    time.sleep(3)  # the prober runs a cycle a second
    assert _prober_sample(prober, "fairgate_probe_pairs_sent_total") > sent_before
    assert _prober_sample(prober, "fairgate_probe_success") == 1
    assert prober.process.poll() is None and service.process.poll() is None
    prometheus.start()
    for job in ("fairgate-service", "fairgate-prober"):
        assert prometheus.wait_for(f'up{{job="{job}"}} == 1', 30), f"{job} not scraped again"
    # Data from before the restart is still there (same storage directory).
    assert prometheus.query("count_over_time(fairgate_probe_success[10m]) > 5")


def _live_decisions(service: LiveService) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fairgate_decisions_total"
    )


def test_two_servers_on_one_home_keep_their_own_counters(trained):
    """A second ``bentoml serve`` on the same BENTOML_HOME must not zero the first's counters."""
    records = to_records(generate_applicants(5, seed=406))
    first = LiveService(trained.tag, workers=1).wait()
    try:
        for record in records[:3]:
            assert httpx.post(f"{first.url}/decide", json=record, timeout=10).status_code == 200
        assert _live_decisions(first) == 3
        second = LiveService(trained.tag, workers=1).wait()
        try:
            assert first.env["BENTOML_HOME"] == second.env["BENTOML_HOME"]
            assert _live_decisions(first) == 3
            for record in records[3:]:
                response = httpx.post(f"{second.url}/decide", json=record, timeout=10)
                assert response.status_code == 200
            assert _live_decisions(second) == 2
            assert _live_decisions(first) == 3
        finally:
            second.stop()
        assert _live_decisions(first) == 3
    finally:
        first.stop()


CYCLE_LINE = re.compile(
    r"INFO fairgate\.prober probe cycle (\d+) ok target=(\S+) decisions_sent=(\d+) "
    r"duration=[\d.]+s worst_four_fifths=[\d.]+ \([^)]+\) max_flip_rate=[\d.]+% \([^)]*\) "
    r"control_flip_rate=([\d.]+)%(?: median_gap=\S+ \([^)]+\))?(?: near_boundary=\d+/\d+)?$"
)


def _log_lines(process: ProberProcess) -> list[str]:
    assert process.log is not None
    return process.log.read_text().splitlines()


def test_the_sidecar_logs_one_line_per_cycle_and_no_request_lines(stack):
    lines = _log_lines(stack["prober"])
    cycles = [m for m in map(CYCLE_LINE.search, lines) if m]
    assert len(cycles) >= 3, "\n".join(lines[-20:])
    assert [int(m[1]) for m in cycles] == list(range(len(cycles)))
    assert {m[2] for m in cycles} == {stack["service"].url}
    # 200 pairs x every twin (synthetic: 2 genders + 4 age bands; German: 5 age bands + 4
    # status values) + 200 control applicants twice + at least a grid of 2 x 20 x 10 values.
    twins = {"synthetic": 6, "german": 9}[stack["contract"]]
    assert all(int(m[3]) >= 200 * twins + 400 + 400 for m in cycles)
    assert {m[4] for m in cycles} == {"0.0"}
    assert not any("HTTP Request" in line for line in lines)
    # Besides the cycle lines, only the start-up line.
    others = [line for line in lines if not CYCLE_LINE.search(line)]
    assert len(others) <= 2, others


def test_request_lines_appear_at_debug_level(stack):
    prober = ProberProcess(
        stack["service"].url, "--interval", "5", "--pairs", "20", "--gap-sample", "0",
        "--log.level", "debug",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = _log_lines(prober)
            if any(CYCLE_LINE.search(line) for line in lines):
                break
            time.sleep(0.3)
    finally:
        prober.stop()
    assert any(CYCLE_LINE.search(line) for line in lines)
    assert any("HTTP Request: POST" in line for line in lines)
