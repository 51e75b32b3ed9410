"""deploy/kubernetes: every manifest is valid Kubernetes and agrees with what it deploys.

Validity is kubernetes-validate's: the Kubernetes API's JSON schemas bundled in the package
(nothing fetched), in strict mode, so an unknown or misspelled field is an error, not
silently dropped by the API server. Agreement is checked by pure functions over the parsed
documents (each returns its problems, an empty list when there are none): the variables set
are ones the service or the prober reads, and with values they accept; names, ports,
probes, selectors and the autoscaler point at each other. Each check is also run on a
broken copy to show it catches what it is for. No cluster is involved.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = DEPLOY / "kustomization.yaml"
CONTRACT = REPO / "fairgate" / "contracts" / "synthetic.toml"
# The oldest minor release the manifests claim to fit (every field used exists since) and
# the newest schema kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SERVICE = "fairgate"  # the decision service's Deployment, Service, HPA and PDB
PROBER = "fairgate-prober"
# Variables the service container sets that are not FAIRGATE_* settings, and who reads them.
OTHER_VARIABLES = {
    "OMP_NUM_THREADS": "numpy's BLAS (service.launch sets it to 1 for `fairgate serve`)",
    "BENTOML_CONFIG_OVERRIDES": "BentoML: the worker count (bentofile.yaml bakes in 2)",
}

Manifest = dict[str, Any]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


def generated_config_maps() -> list[Manifest]:
    """The ConfigMaps kustomize's ``configMapGenerator`` makes (before its name hash)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": {Path(file).name: (DEPLOY / file).read_text() for file in generator["files"]},
        }
        for generator in kustomization().get("configMapGenerator", [])
    ]


def load_manifests() -> list[Manifest]:
    """Every document of every listed resource file, then the generated ConfigMaps."""
    documents = []
    for name in kustomization()["resources"]:
        documents += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return documents + generated_config_maps()


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name!r}"
    return found[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def container(manifests: list[Manifest], deployment: str) -> dict[str, Any]:
    return find(manifests, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def _secret_data(secret: Manifest) -> dict[str, str]:
    return secret.get("stringData", {}) | secret.get("data", {})


def container_env(manifests: list[Manifest], deployment: str) -> dict[str, str]:
    """The variables ``deployment``'s container gets, with their values, resolved from
    literal values, ConfigMaps and Secrets; ``KeyError`` for a reference to nothing."""
    env: dict[str, str] = {}
    spec = container(manifests, deployment)
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            data = find(manifests, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            data = _secret_data(find(manifests, "Secret", source["secretRef"]["name"]))
        env |= {source.get("prefix", "") + key: value for key, value in data.items()}
    for variable in spec.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            env[variable["name"]] = _secret_data(find(manifests, "Secret", ref["name"]))[ref["key"]]
        else:
            ref = reference["configMapKeyRef"]
            env[variable["name"]] = find(manifests, "ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def service_variables() -> set[str]:
    """The variables service/config.py documents (its table: every setting and default)."""
    import service.config

    return set(re.findall(r"^\| (FAIRGATE_[A-Z_]+) \|", service.config.__doc__ or "", re.M))


def prober_variables() -> set[str]:
    from monitoring.config import ENV_PREFIX, ProberConfig

    names = [f.name for f in fields(ProberConfig)] + ["token_file"]
    return {ENV_PREFIX + name.upper() for name in names}


def container_port(spec: dict[str, Any], port: int | str) -> int | None:
    """A port given by number or by the container's name for it."""
    if isinstance(port, int):
        return port if any(p["containerPort"] == port for p in spec["ports"]) else None
    return next((p["containerPort"] for p in spec["ports"] if p.get("name") == port), None)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- the checks ----------------------------------------------------------------------------


def schema_problems(manifests: list[Manifest], version: str) -> list[str]:
    problems = []
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{name}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: {error.message}")
    return problems


def variable_problems(manifests: list[Manifest]) -> list[str]:
    """Every variable set is read by its container's program, and the values are accepted."""
    from fairgate.config_error import ConfigError
    from monitoring.config import config_from_mapping, env_mapping
    from service.config import service_config

    env = container_env(manifests, SERVICE)
    known = service_variables() | set(OTHER_VARIABLES)
    problems = [f"{SERVICE}: nothing reads {name}" for name in sorted(set(env) - known)]
    prober_env = container_env(manifests, PROBER)
    problems += [
        f"{PROBER}: nothing reads {name}" for name in sorted(set(prober_env) - prober_variables())
    ]
    try:
        config = service_config(env)
        overrides = json.loads(env["BENTOML_CONFIG_OVERRIDES"])
        if config.workers != overrides["services"]["fairgate"]["workers"]:
            problems.append("FAIRGATE_WORKERS and BENTOML_CONFIG_OVERRIDES disagree")
        if config.record_url is None or not config.record_url.startswith("postgresql://"):
            problems.append(f"replicas need a PostgreSQL record, not {config.record_store}")
        if config.probe_token is None or config.record_read_token is None:
            problems.append("the probe or record-reader token is not set")
    except ConfigError as error:
        problems.append(f"{SERVICE}: {error}")
    try:
        prober = config_from_mapping(env_mapping(prober_env))
        if prober.token != env.get("FAIRGATE_PROBE_TOKEN"):
            problems.append("the prober's token is not the service's")
    except ConfigError as error:
        problems.append(f"{PROBER}: {error}")
    return problems


def reference_problems(manifests: list[Manifest]) -> list[str]:
    """Every ConfigMap and Secret a Deployment names exists, with the keys it names."""
    problems = []
    for deployment in of_kind(manifests, "Deployment"):
        name = deployment["metadata"]["name"]
        try:
            container_env(manifests, name)
        except (AssertionError, KeyError) as error:
            problems.append(f"{name}: env: {error}")
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key in volume:
                    target = volume[key].get("name") or volume[key].get("secretName")
                    if not any(m["metadata"]["name"] == target for m in of_kind(manifests, kind)):
                        problems.append(f"{name}: volume {volume['name']}: no {kind} {target}")
    return problems


def port_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    spec = container(manifests, SERVICE)
    for port in find(manifests, "Service", SERVICE)["spec"]["ports"]:
        if container_port(spec, port["targetPort"]) != 3000:
            problems.append(f"Service port {port['port']}: targetPort is not the container's 3000")
        if port["port"] != 3000:
            problems.append(f"Service port {port['port']}: clients and the prober use 3000")
    for deployment in (SERVICE, PROBER):
        template = find(manifests, "Deployment", deployment)["spec"]["template"]
        annotated = int(template["metadata"]["annotations"]["prometheus.io/port"])
        if container_port(template["spec"]["containers"][0], annotated) is None:
            problems.append(f"{deployment}: scraped port {annotated} is not a container port")
    target = urlsplit(container_env(manifests, PROBER)["FAIRGATE_PROBE_TARGET"])
    if (target.hostname, target.port) != (SERVICE, 3000):
        problems.append(f"the prober probes {target.netloc}, not the Service {SERVICE}:3000")
    listen = int(container_env(manifests, PROBER)["FAIRGATE_PROBE_LISTEN_ADDRESS"].split(":")[-1])
    if container_port(container(manifests, PROBER), listen) is None:
        problems.append(f"the prober listens on {listen}, not a container port")
    return problems


def probe_problems(manifests: list[Manifest]) -> list[str]:
    """Liveness (and start-up) on BentoML's /livez, readiness on /readyz, on port 3000."""
    spec = container(manifests, SERVICE)
    wanted = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    problems = []
    for probe, path in wanted.items():
        if probe == "startupProbe" and probe not in spec:
            continue
        check = spec.get(probe, {}).get("httpGet", {})
        if check.get("path") != path or container_port(spec, check.get("port", "")) != 3000:
            problems.append(f"{probe}: {check.get('path')} on {check.get('port')}, not {path}")
    return problems


def scaling_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    hpa = find(manifests, "HorizontalPodAutoscaler", SERVICE)["spec"]
    target = hpa["scaleTargetRef"]
    deployments = {d["metadata"]["name"]: d for d in of_kind(manifests, "Deployment")}
    if (target["apiVersion"], target["kind"]) != ("apps/v1", "Deployment"):
        problems.append(f"the autoscaler targets a {target['kind']}")
    if target["name"] != SERVICE or target["name"] not in deployments:
        return [*problems, f"the autoscaler targets {target['name']!r}, not {SERVICE!r}"]
    replicas = deployments[SERVICE]["spec"]["replicas"]
    if not replicas == hpa["minReplicas"] == 2 or hpa["maxReplicas"] <= hpa["minReplicas"]:
        problems.append("replicas, minReplicas (2) and maxReplicas do not agree")
    if [m["resource"]["name"] for m in hpa["metrics"]] != ["cpu"]:
        problems.append("the autoscaler does not scale on CPU")
    if "cpu" not in container(manifests, SERVICE)["resources"].get("requests", {}):
        problems.append("CPU utilization needs a CPU request")
    pdb = find(manifests, "PodDisruptionBudget", SERVICE)["spec"]
    if not 1 <= pdb["minAvailable"] < hpa["minReplicas"]:
        problems.append("minAvailable must keep one replica and still let a node drain")
    return problems


def selector_problems(manifests: list[Manifest]) -> list[str]:
    """Each Service, PDB and Deployment selects exactly the pods it is for."""
    templates = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in of_kind(manifests, "Deployment")
    }
    selecting = [
        (f"Service/{SERVICE}", find(manifests, "Service", SERVICE)["spec"]["selector"], SERVICE),
        (
            f"PodDisruptionBudget/{SERVICE}",
            find(manifests, "PodDisruptionBudget", SERVICE)["spec"]["selector"]["matchLabels"],
            SERVICE,
        ),
    ] + [
        (f"Deployment/{name}", find(manifests, "Deployment", name)["spec"]["selector"]
         ["matchLabels"], name)
        for name in templates
    ]  # fmt: skip
    problems = []
    for what, selector, wanted in selecting:
        selected = {name for name, labels in templates.items() if matches(selector, labels)}
        if selected != {wanted}:
            problems.append(f"{what} selects the pods of {sorted(selected)}, not [{wanted!r}]")
    return problems


CHECKS: dict[str, Callable[[list[Manifest]], list[str]]] = {
    "variables": variable_problems,
    "references": reference_problems,
    "ports": port_problems,
    "probes": probe_problems,
    "scaling": scaling_problems,
    "selectors": selector_problems,
}


# --- the shipped manifests ----------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(version):
    manifests = load_manifests()
    assert {m["kind"] for m in manifests} >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "ConfigMap", "Secret",
    }  # fmt: skip
    assert schema_problems(manifests, version) == []


@pytest.mark.parametrize("check", CHECKS)
def test_the_manifests_agree(check):
    assert CHECKS[check](load_manifests()) == []


def test_kustomization_lists_every_manifest_and_every_file_is_used():
    listed = set(kustomization()["resources"])
    manifests = {path.name for path in DEPLOY.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert listed == manifests
    generated = {
        file for generator in kustomization()["configMapGenerator"] for file in generator["files"]
    }
    every_file = {
        path.relative_to(DEPLOY).as_posix() for path in DEPLOY.rglob("*") if path.is_file()
    }
    assert every_file == listed | generated | {KUSTOMIZATION.name, "README.md"}


def test_the_contract_config_map_is_the_default_contract_byte_for_byte():
    (generator,) = kustomization()["configMapGenerator"]
    (file,) = generator["files"]
    assert (DEPLOY / file).read_bytes() == CONTRACT.read_bytes()


def test_the_contract_is_mounted_read_only_from_its_config_map():
    pod = find(load_manifests(), "Deployment", SERVICE)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == (
        kustomization()["configMapGenerator"][0]["name"]))  # fmt: skip
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True


def test_no_manifest_sets_a_namespace():
    assert [m["metadata"]["name"] for m in load_manifests() if "namespace" in m["metadata"]] == []


def test_every_secret_value_is_a_marked_placeholder():
    for secret in of_kind(load_manifests(), "Secret"):
        for key, value in _secret_data(secret).items():
            assert "replace" in value, f"{secret['metadata']['name']}.{key} looks like a secret"


def test_no_pod_gets_service_link_variables():
    # A Service named fairgate-probe... would inject FAIRGATE_PROBE_* variables, which the
    # prober reads as settings (and refuses as unknown); FAIRGATE_SERVICE_HOST and the like
    # would only add noise to the service's environment.
    for deployment in of_kind(load_manifests(), "Deployment"):
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_the_image_build_command_is_written_where_the_image_is_named():
    text = (DEPLOY / "deployment.yaml").read_text()
    assert "bentoml build && bentoml containerize fairgate:latest -t fairgate:latest" in text
    assert container(load_manifests(), SERVICE)["image"] == "fairgate:latest"


def test_the_readme_names_every_manifest_and_describes_the_product_not_its_history():
    from tests.test_docs_now import history

    text = (DEPLOY / "README.md").read_text()
    for name in kustomization()["resources"]:
        assert f"`{name}`" in text, name
    assert history("deploy/kubernetes/README.md", text) == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) not here")
def test_kubectl_kustomize_renders_valid_manifests_with_the_contract():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout  # fmt: skip
    manifests = [d for d in yaml.safe_load_all(rendered) if d]
    assert schema_problems(manifests, KUBERNETES_VERSIONS[-1]) == []
    volumes = find(manifests, "Deployment", SERVICE)["spec"]["template"]["spec"]["volumes"]
    (name,) = [v["configMap"]["name"] for v in volumes if "configMap" in v]
    assert name.startswith("fairgate-contract-")  # kustomize's content hash
    assert find(manifests, "ConfigMap", name)["data"] == {"synthetic.toml": CONTRACT.read_text()}


# --- each check catches what it is for ----------------------------------------------------


def _misspell_a_field(m: list[Manifest]) -> None:
    spec = container(m, SERVICE)
    spec["readynessProbe"] = spec.pop("readinessProbe")


def _port_as_text(m: list[Manifest]) -> None:
    container(m, SERVICE)["ports"][0]["containerPort"] = "3000"


def _unknown_variable(m: list[Manifest]) -> None:
    find(m, "ConfigMap", "fairgate-settings")["data"]["FAIRGATE_WORKER"] = "2"


def _bad_value(m: list[Manifest]) -> None:
    find(m, "ConfigMap", "fairgate-settings")["data"]["FAIRGATE_POLICY"] = "fair"


def _poll_too_slow(m: list[Manifest]) -> None:
    find(m, "ConfigMap", "fairgate-settings")["data"]["FAIRGATE_POLICY_POLL"] = "3600"


def _workers_disagree(m: list[Manifest]) -> None:
    find(m, "ConfigMap", "fairgate-settings")["data"]["FAIRGATE_WORKERS"] = "4"


def _unknown_prober_variable(m: list[Manifest]) -> None:
    container(m, PROBER)["env"].append({"name": "FAIRGATE_PROBE_INTERVAL", "value": "30"})


def _missing_secret(m: list[Manifest]) -> None:
    find(m, "Secret", "fairgate-record")["metadata"]["name"] = "fairgate-database"


def _missing_contract(m: list[Manifest]) -> None:
    find(m, "ConfigMap", "fairgate-contract")["metadata"]["name"] = "contract"


def _target_port(m: list[Manifest]) -> None:
    find(m, "Service", SERVICE)["spec"]["ports"][0]["targetPort"] = 8080


def _prober_target(m: list[Manifest]) -> None:
    for variable in container(m, PROBER)["env"]:
        if variable["name"] == "FAIRGATE_PROBE_TARGET":
            variable["value"] = "http://fairgate-service:3000"


def _readiness_on_livez(m: list[Manifest]) -> None:
    container(m, SERVICE)["readinessProbe"]["httpGet"]["path"] = "/livez"


def _hpa_target(m: list[Manifest]) -> None:
    find(m, "HorizontalPodAutoscaler", SERVICE)["spec"]["scaleTargetRef"]["name"] = "decisions"


def _pdb_blocks_drains(m: list[Manifest]) -> None:
    find(m, "PodDisruptionBudget", SERVICE)["spec"]["minAvailable"] = 2


def _service_selects_the_prober(m: list[Manifest]) -> None:
    del find(m, "Service", SERVICE)["spec"]["selector"]["app.kubernetes.io/component"]


BREAKAGES: dict[str, tuple[Callable[[list[Manifest]], None], str, str]] = {
    "misspelled field": (_misspell_a_field, "schema", "'readynessProbe' was unexpected"),
    "port as text": (_port_as_text, "schema", "is not of type 'integer'"),
    "unknown variable": (_unknown_variable, "variables", "nothing reads FAIRGATE_WORKER"),
    "bad value": (_bad_value, "variables", "FAIRGATE_POLICY='fair'"),
    "poll too slow": (_poll_too_slow, "variables", "FAIRGATE_POLICY_POLL='3600'"),
    "workers disagree": (_workers_disagree, "variables", "disagree"),
    "prober variable": (_unknown_prober_variable, "variables", "FAIRGATE_PROBE_INTERVAL"),
    "missing secret": (_missing_secret, "references", "fairgate-record"),
    "missing contract": (_missing_contract, "references", "no ConfigMap fairgate-contract"),
    "target port": (_target_port, "ports", "targetPort"),
    "prober target": (_prober_target, "ports", "fairgate-service:3000"),
    "readiness path": (_readiness_on_livez, "probes", "readinessProbe: /livez"),
    "hpa target": (_hpa_target, "scaling", "'decisions'"),
    "pdb": (_pdb_blocks_drains, "scaling", "minAvailable"),
    "selector": (_service_selects_the_prober, "selectors", "fairgate-prober"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_copy_is_rejected(breakage):
    breaks, check, message = BREAKAGES[breakage]
    manifests = copy.deepcopy(load_manifests())
    breaks(manifests)
    if check == "schema":
        problems = schema_problems(manifests, KUBERNETES_VERSIONS[0])
    else:
        problems = CHECKS[check](manifests)
    assert any(message in problem for problem in problems), problems
