"""The decision record's settings in the service configuration (service/config.py)."""

from pathlib import Path

import pytest

from fairgate.config_error import ConfigError
from service.config import absolute_record_url, service_config

TOKEN = "reader-token-0123456789"


def test_the_record_is_on_by_default_in_the_data_directory():
    assert service_config({}).record_url == "sqlite:///fairgate-data/record.sqlite"
    moved = service_config({"FAIRGATE_DATA_DIR": "/var/lib/fairgate"})
    assert moved.record_url == "sqlite:////var/lib/fairgate/record.sqlite"


def test_a_record_url_wins_over_the_data_directory():
    env = {"FAIRGATE_DATA_DIR": "/elsewhere", "FAIRGATE_RECORD_URL": "postgresql://db/fairgate"}
    assert service_config(env).record_url == "postgresql://db/fairgate"


def test_off_means_no_record_and_no_url():
    assert service_config({"FAIRGATE_RECORD": "off"}).record_url is None


def test_the_reader_token_is_read_and_never_shown():
    config = service_config({"FAIRGATE_RECORD_READ_TOKEN": TOKEN})
    assert config.record_read_token == TOKEN
    assert TOKEN not in repr(config)
    assert service_config({}).record_read_token is None


def test_a_password_in_the_record_url_is_never_shown():
    config = service_config({"FAIRGATE_RECORD_URL": "postgresql://app:s3cret@db:5432/fairgate"})
    assert "s3cret" not in repr(config)
    assert "postgresql://app:<set>@db:5432/fairgate" in repr(config)


def test_every_bad_record_entry_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        service_config(
            {
                "FAIRGATE_RECORD": "sometimes",
                "FAIRGATE_RECORD_URL": "mysql://db/fairgate",
                "FAIRGATE_RECORD_READ_TOKEN": "short",
                "FAIRGATE_POLICY": "lenient",
            }
        )
    problems = raised.value.problems
    assert len(problems) == 4
    assert any(p.startswith("FAIRGATE_RECORD='sometimes'") for p in problems)
    assert any("unknown store 'mysql'" in p for p in problems)
    assert any(p.startswith("FAIRGATE_RECORD_READ_TOKEN: too short") for p in problems)


def test_off_with_a_url_is_a_contradiction():
    with pytest.raises(ConfigError, match="FAIRGATE_RECORD=off but FAIRGATE_RECORD_URL is set"):
        service_config({"FAIRGATE_RECORD": "off", "FAIRGATE_RECORD_URL": "sqlite:///r.sqlite"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///fairgate-data/record.sqlite", "sqlite:////srv/app/fairgate-data/record.sqlite"),
        ("sqlite:////var/record.sqlite", "sqlite:////var/record.sqlite"),
        ("postgresql://db/fairgate", "postgresql://db/fairgate"),
        (None, None),
    ],
)
def test_a_relative_sqlite_path_is_pinned_to_where_the_user_stands(url, expected):
    assert absolute_record_url(url, Path("/srv/app")) == expected
