"""Schemathesis against the live service's own OpenAPI document: every check it has.

Bounded here (100 examples per operation, fixed seed). The longer run, documented in
docs/reliability.md: ``schemathesis run URL/docs.json --checks all -n 2000``.
"""

import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_schemathesis_finds_no_5xx_and_no_schema_violations(live_service):
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{live_service.url}/docs.json",
         "--checks", "all", "--max-examples", "100", "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "No issues found" in output
    assert "/decide_batch" in output or "6 selected" in output


def test_the_documented_error_schema_matches_what_is_sent(live_service):
    spec = httpx.get(f"{live_service.url}/docs.json", timeout=10).json()
    post = spec["paths"]["/decide"]["post"]
    assert post["requestBody"]["required"] is True
    assert {"400", "413", "415"} <= post["responses"].keys()
    detail = spec["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert {"type": "string"} in detail["anyOf"]
    sent = httpx.post(f"{live_service.url}/decide", json={"age": "x"}, timeout=10).json()
    assert isinstance(sent["detail"], list) and {"loc", "msg"} <= sent["detail"][0].keys()
