"""``fairgate record verify|export|prune`` on real stores, reading FAIRGATE_RECORD_URL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from record import Record, RecordWriter, open_record
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures

NOW = datetime.now(UTC)


def record(app_id: str, age: timedelta) -> Record:
    return Record(
        time=NOW - age, application_id=app_id, request={"application_id": app_id},
        score=0.5, group="female", rule="female", draw=None, approval_probability=1.0,
        decision="approve", reasons=[], model_version="m:1", policy_version="p-1", probe=False,
    )  # fmt: skip


def fill(url: str) -> None:
    """Records 40, 20 and 1 days old, and one 26 months old."""
    ages = {"old": timedelta(days=26 * 31), "d40": timedelta(days=40),
            "d20": timedelta(days=20), "d1": timedelta(days=1)}  # fmt: skip
    with open_record(url) as store, RecordWriter(store, writer_id="w") as writer:
        writer.append_sync([record(name, age) for name, age in ages.items()])


def run(url: str | None, *args: str):
    env = {"FAIRGATE_RECORD_URL": url, "COLUMNS": "200"}
    return CliRunner().invoke(app, ["record", *args], env=env, prog_name="fairgate")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_verify_says_ok_then_finds_a_deletion(url, tmp_path):
    fill(url)
    result = run(url, "verify")
    assert result.exit_code == 0, result.output
    assert "ok: 4 records in 1 chains, intact" in result.output
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM decision_record WHERE seq = 2")
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM decision_record WHERE seq = 2")
    result = run(url, "verify")
    assert result.exit_code == 1
    assert "deleted: writer w seq 2: row(s) 2 are missing" in result.output
    assert "TAMPERED: 1 problems in 3 records" in result.output


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_export_a_range(url, tmp_path, format):
    fill(url)
    out = tmp_path / f"out.{format}"
    result = run(url, "export", "--since", "30d", "--until", "2d", "--format", format,
                 "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 1 records" in result.output
    frame = pd.read_parquet(out) if format == "parquet" else pd.read_csv(out)
    assert list(frame["application_id"]) == ["d20"]
    everything = run(url, "export", "--output", str(out), "--format", format)
    assert "wrote 4 records" in everything.output


def test_prune_defaults_to_25_months_and_verify_stays_clean(url):
    fill(url)
    result = run(url, "prune")
    assert result.exit_code == 0, result.output
    assert "pruned 1 records older than 25mo" in result.output
    assert "pruned 1 records older than 30d" in run(url, "prune", "--older-than", "30d").output
    verified = run(url, "verify")
    assert verified.exit_code == 0, verified.output
    assert "ok: 2 records" in verified.output


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ("mysql://h/db", ["verify"], "unknown store 'mysql'"),
        ("sqlite:////nonexistent/dir/record.sqlite", ["verify"], "no such file"),
        ("postgresql://postgres@127.0.0.1:1/x", ["prune"], "cannot open the record"),
        ("sqlite:////x.sqlite", ["prune", "--older-than", "25"], "is not a duration"),
        ("sqlite:////x.sqlite", ["export", "--output", "o", "--format", "xls"], "parquet or csv"),
        ("sqlite:////x.sqlite", ["export", "--output", "o", "--since", "May"], "neither a date"),
    ],
)
def test_errors_are_one_clear_line_and_exit_2(env, args, message):
    result = run(env, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["", "verify", "export", "prune"])
def test_help_fits_80_columns(command):
    args = ["record", command, "--help"] if command else ["record", "--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, prog_name="fairgate")
    assert result.exit_code == 0
    for line in result.output.splitlines():
        assert len(line) <= 80, line
        if not line.startswith("Usage:"):
            assert not line.rstrip().endswith(("...", "…")), line
    assert "<bool>" not in result.output


def test_verify_checks_the_policy_log_too(tmp_path):
    """Versions and promotions are in the same database: an edited promotion is tampering."""
    from record.policy_store import PolicyStore, Scope

    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    fill(url)
    scope = Scope("m:1", "mitigated")
    with PolicyStore.open(url) as policies:
        policies.add_version(scope, "p-2", parent="p-1", body={}, author="a", reason="drift")
        policies.promote(scope, "p-2", trained="p-1", author="a", reason="drift")
    result = run(url, "verify")
    assert result.exit_code == 0, result.output
    assert "ok: 4 records in 1 chains, intact; policy log: 2 entries, intact" in result.output
    with sqlite3.connect(tmp_path / "record.sqlite") as conn:
        conn.execute("DROP TRIGGER policy_log_append_only")
        conn.execute("UPDATE policy_log SET author = 'someone else' WHERE kind = 'promote'")
    result = run(url, "verify")
    assert result.exit_code == 1
    assert "policy log: entry 2: edited (its hash does not match)" in result.output
    assert "TAMPERED: the policy log (1 problems)" in result.output
