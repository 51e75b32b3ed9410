"""docker-compose.yml, the Dockerfile and the monitoring configs name the same paths and ports.

There is no Docker engine here, so the stack itself is not started by these tests; the
same Prometheus config and dashboard run for real in test_monitoring_stack.py.
"""

import json
import re
from pathlib import Path

import yaml

from service.launch import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path, for bind mounts (host paths starting with ./)."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            mounts[container] = host
    return mounts


def _container_ports(service: str) -> set[int]:
    return {int(p.split(":")[1]) for p in SERVICES[service]["ports"]}


def test_every_bind_mount_and_build_context_exists():
    for name, service in SERVICES.items():
        for container, host in _mounts(name).items():
            assert (REPO / host).exists(), f"{name}: {host} (for {container}) does not exist"
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").is_file()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_prometheus_scrapes_the_ports_the_service_and_prober_listen_on():
    service_cmd = SERVICES["service"]["command"]
    prober_cmd = SERVICES["prober"]["command"]
    listening = {
        "service": int(_flag(service_cmd, "--port")),
        "prober": int(_flag(prober_cmd, "--web.listen-address").rpartition(":")[2]),
    }
    for name, port in listening.items():
        assert port in _container_ports(name)
    config_path = _flag_value(SERVICES["prometheus"]["command"], "--config.file")
    host_dir = _mounts("prometheus")[str(Path(config_path).parent)]
    config = yaml.safe_load((REPO / host_dir / Path(config_path).name).read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {
        "fairgate-service": f"service:{listening['service']}",
        "fairgate-prober": f"prober:{listening['prober']}",
    }
    for rule_file in config["rule_files"]:
        assert (REPO / host_dir / rule_file).is_file()
    assert _flag(prober_cmd, "--target") == f"http://service:{listening['service']}"


def _flag_value(command: list[str], flag: str) -> str:
    return next(item.split("=", 1)[1] for item in command if item.startswith(flag + "="))


def test_grafana_reads_the_provisioned_datasource_and_dashboard():
    mounts = _mounts("grafana")
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ][0]
    # Prometheus listens on its default 9090 unless the command says otherwise.
    command = SERVICES["prometheus"]["command"]
    assert not any(item.startswith("--web.listen-address") for item in command)
    assert datasource["url"] == "http://prometheus:9090"
    assert 9090 in _container_ports("prometheus")

    provider = yaml.safe_load((provisioning / "dashboards" / "fairgate.yml").read_text())
    dashboard_dir = provider["providers"][0]["options"]["path"]
    host_dir = REPO / mounts[dashboard_dir]
    dashboards = list(host_dir.glob("*.json"))
    assert dashboards
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (host_dir / Path(home).relative_to(dashboard_dir)).is_file()
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
        assert uids == {datasource["uid"]}


def test_dashboard_queries_only_name_metrics_that_exist():
    """Every metric a panel reads is exported by the service, the prober or a recording rule."""
    exported = set(
        re.findall(
            r'"(fairgate_[a-z_]+)"',
            "".join(
                p.read_text()
                for p in (
                    REPO / "service" / "metrics.py",
                    REPO / "monitoring" / "exporter.py",
                    REPO / "monitoring" / "last_cycle.py",
                )
            ),
        )
    )
    recorded = {
        rule["record"]
        for group in yaml.safe_load(
            (REPO / "monitoring/prometheus/rules/recording.yml").read_text()
        )["groups"]
        for rule in group["rules"]
    }
    dashboard = json.loads((REPO / "monitoring/grafana/dashboards/fairgate.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"[a-z0-9_:]*fairgate[a-z0-9_:]*", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in recorded or base in exported, f"{panel['title']}: {name}"


def test_service_and_prober_share_one_generated_probe_token(tmp_path):
    from typer.testing import CliRunner

    from cli.main import app
    from fairgate.probe_auth import token_from_env

    made = SERVICES["probe-token"]["command"]
    path = _flag(made, "--output")
    for name in ("service", "prober"):
        assert SERVICES[name]["environment"]["FAIRGATE_PROBE_TOKEN_FILE"] == path
        volume = next(v for v in SERVICES[name]["volumes"] if v.startswith("secrets:"))
        assert path.startswith(volume.split(":")[1] + "/")
    assert SERVICES["service"]["depends_on"]["probe-token"]["condition"] == (
        "service_completed_successfully"
    )
    # The command the one-shot container runs: a fresh token once, then kept.
    target = tmp_path / "secrets" / "probe_token"
    first = CliRunner().invoke(app, [*made[:-1], str(target)])
    assert first.exit_code == 0 and "wrote a new probe token" in first.output
    token = token_from_env({"FAIRGATE_PROBE_TOKEN_FILE": str(target)})
    assert token and len(token) >= 40 and target.stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(app, [*made[:-1], str(target)])
    assert again.exit_code == 0 and "kept" in again.output
    assert token_from_env({"FAIRGATE_PROBE_TOKEN_FILE": str(target)}) == token


def test_the_decision_record_is_on_a_named_volume():
    # Records must outlive the container: the service's data directory is a named volume,
    # declared at the top level, and nothing overrides the record's location elsewhere.
    service = SERVICES["service"]
    data_dir = service["environment"]["FAIRGATE_DATA_DIR"]
    named = {
        container: host
        for host, container in (v.split(":")[:2] for v in service["volumes"])
        if not host.startswith(("./", "/"))
    }
    assert named.get(data_dir) in COMPOSE["volumes"]
    assert "FAIRGATE_RECORD_URL" not in service["environment"]
    assert "FAIRGATE_RECORD" not in service["environment"]
