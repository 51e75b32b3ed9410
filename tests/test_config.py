"""The service configuration: a pure function of a mapping, every bad entry reported at once."""

import json

import pytest

from fairgate.artifacts import DEFAULT_MODEL
from fairgate.config_error import ConfigError
from service.config import DEFAULT_MAX_BODY_BYTES, ServiceConfig, service_config
from service.launch import worker_overrides

KEY = "0123456789abcdef-key"


def test_defaults_from_an_empty_environment():
    assert service_config({}) == ServiceConfig(
        model=DEFAULT_MODEL,
        policy="lda",
        workers=1,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        gc="tuned",
        draw_key=None,
        artifact_key=None,
    )


def test_every_entry_read():
    config = service_config(
        {
            "FAIRGATE_MODEL": "fairgate-loan:abc123",
            "FAIRGATE_POLICY": "randomized",
            "FAIRGATE_WORKERS": "3",
            "FAIRGATE_MAX_BODY_BYTES": "4096",
            "FAIRGATE_GC": "default",
            "FAIRGATE_DRAW_KEY": KEY,
            "FAIRGATE_ARTIFACT_KEY": KEY + "2",
        }
    )
    assert (config.model, config.policy, config.workers) == (
        "fairgate-loan:abc123",
        "randomized",
        3,
    )
    assert (config.max_body_bytes, config.gc) == (4096, "default")
    assert config.draw_key == KEY.encode() and config.artifact_key == (KEY + "2").encode()
    assert KEY not in repr(config)


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        service_config(
            {
                "FAIRGATE_MODEL": "Not A Tag!",
                "FAIRGATE_POLICY": "randomised",
                "FAIRGATE_WORKERS": "two",
                "FAIRGATE_MAX_BODY_BYTES": "12",
                "FAIRGATE_GC": "aggressive",
                "FAIRGATE_ARTIFACT_KEY": "short",
            }
        )
    assert [p.split("=")[0].split(":")[0] for p in caught.value.problems] == [
        "FAIRGATE_MODEL",
        "FAIRGATE_POLICY",
        "FAIRGATE_WORKERS",
        "FAIRGATE_MAX_BODY_BYTES",
        "FAIRGATE_GC",
        "FAIRGATE_ARTIFACT_KEY",
    ]
    assert "must be one of lda, mitigated, randomized, unmitigated" in str(caught.value)


@pytest.mark.parametrize("env", [{}, {"FAIRGATE_DRAW_KEY": ""}])
def test_randomized_needs_a_draw_key(env):
    with pytest.raises(ConfigError, match="FAIRGATE_DRAW_KEY: required with"):
        service_config({"FAIRGATE_POLICY": "randomized"} | env)


@pytest.mark.parametrize("workers", ["0", "65", "-1", "1.5"])
def test_worker_count_bounds(workers):
    with pytest.raises(ConfigError, match="FAIRGATE_WORKERS"):
        service_config({"FAIRGATE_WORKERS": workers})


def test_launcher_passes_workers_as_a_bentoml_override_keeping_others():
    given = {"FAIRGATE_WORKERS": "2", "BENTOML_CONFIG_OVERRIDES": '{"api_server": {"x": 1}}'}
    overrides = json.loads(worker_overrides(given)["BENTOML_CONFIG_OVERRIDES"])
    assert overrides == {"api_server": {"x": 1}, "services": {"fairgate": {"workers": 2}}}
    assert worker_overrides({}) == {}
    assert worker_overrides({"FAIRGATE_WORKERS": "two"}) == {}
