"""``python -m loadtests.instructions`` drives the real apps in process (the callgrind count
itself needs valgrind, which the suite does not install; its figures are in
docs/benchmarks.md with the command)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from service.launch import REPO


@pytest.mark.parametrize("endpoint", ["floor", "decide"])
def test_the_instruction_counter_drives_each_real_app_in_process(trained, endpoint):
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.instructions", "--child", endpoint, "--no-count",
         "--model", trained.tag or "", "--requests", "40"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers["statuses"] == [200] * 40
    if endpoint == "decide":  # a decision of the trained model, through fairgate's handler
        assert answers["last"]["model_version"] == trained.tag
        assert answers["last"]["decision"] in {"approve", "deny"}
    else:
        assert answers["last"] == {"ok": True}
