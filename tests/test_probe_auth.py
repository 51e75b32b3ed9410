"""The probe token: where it comes from, how it is compared, and who reads it."""

import pytest

from fairgate.config_error import ConfigError
from fairgate.probe_auth import claims_probe, new_token, token_from_env, token_matches
from monitoring.config import config_from_mapping
from service.config import service_config

TOKEN = "a-token-of-28-characters-ok"


def test_the_token_comes_from_the_variable_or_its_file(tmp_path):
    assert token_from_env({}) is None
    assert token_from_env({"FAIRGATE_PROBE_TOKEN": TOKEN}) == TOKEN
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")  # a trailing newline, as `echo` writes it
    assert token_from_env({"FAIRGATE_PROBE_TOKEN_FILE": str(path)}) == TOKEN


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FAIRGATE_PROBE_TOKEN": "short"}, r"too short \(5 characters\)"),
        ({"FAIRGATE_PROBE_TOKEN": TOKEN, "FAIRGATE_PROBE_TOKEN_FILE": "/x"}, "both set"),
        ({"FAIRGATE_PROBE_TOKEN_FILE": "/nonexistent/token"}, "cannot read it"),
    ],
)
def test_a_bad_token_is_named(env, message):
    with pytest.raises(ValueError, match=message):
        token_from_env(env)
    with pytest.raises(ConfigError, match=message):
        service_config(env)


def test_comparison_and_claims():
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches(None, TOKEN) and not token_matches(TOKEN, None)
    assert not token_matches("", "")  # no configured token matches nothing
    assert claims_probe("1") and claims_probe("Yes ") and claims_probe("true")
    assert not claims_probe("0") and not claims_probe(None) and not claims_probe("")
    assert len(new_token()) >= 40 and new_token() != new_token()


def test_the_prober_reads_the_same_variables(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    assert config_from_mapping({"token_file": str(path)}).token == TOKEN
    assert config_from_mapping({"token": TOKEN}).token == TOKEN
    assert TOKEN not in repr(config_from_mapping({"token": TOKEN}))
    with pytest.raises(ConfigError, match="token: FAIRGATE_PROBE_TOKEN: too short"):
        config_from_mapping({"token": "short"})
    assert TOKEN not in repr(service_config({"FAIRGATE_PROBE_TOKEN": TOKEN}))
