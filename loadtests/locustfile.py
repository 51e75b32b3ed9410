"""Locust scenario for the decision service: a realistic mix of traffic.

Usage (service already running)::

    locust -f loadtests/locustfile.py --config loadtests/locust.conf --host http://127.0.0.1:3000

or let ``fairgate loadtest`` start the service, run headless and check the SLOs in
``loadtests/slo.toml``::

    fairgate loadtest --users 20 --run-time 60s

Tasks, by weight: one application on ``/decide`` (20), a batch of 100 on
``/decide_batch`` (1), a probe-like twin pair marked ``X-Fairgate-Probe: 1`` (2). Bodies
come from a pool generated once per process from the target's contract (``loadtests/pool.py``,
read from its ``GET /policy``), never in the loop.

Environment: ``FAIRGATE_LOAD_POOL``/``FAIRGATE_LOAD_BATCH`` (pool and batch sizes),
``FAIRGATE_LOAD_RATE`` (tasks per second per user), ``FAIRGATE_PROBE_TOKEN`` (the probe
pairs' token), ``FAIRGATE_LOAD_ANSWERS`` (a file for every answer), ``FAIRGATE_DRIFT`` (a
population drift for the singles and batches, e.g. ``annual_income*0.8@gender=female``:
``loadtests/drift.py``; the probe pairs stay twins).
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, constant_throughput, events, task

from fairgate.probe_auth import PROBE_HEADER, PROBE_TOKEN_HEADER
from loadtests.answers import log_answers
from loadtests.failures import PROBE_PAIR
from loadtests.pool import pool_for

_user_numbers = itertools.count()
# FAIRGATE_LOAD_RATE: tasks per second per user (a fixed load, for soak runs); 0 = flat out.
_RATE = float(os.environ.get("FAIRGATE_LOAD_RATE", "0"))
# The probe pairs carry the service's token, as the prober does (FAIRGATE_PROBE_TOKEN).
_PROBE_HEADERS = {PROBE_HEADER: "1", PROBE_TOKEN_HEADER: os.environ.get("FAIRGATE_PROBE_TOKEN", "")}
# FAIRGATE_DRIFT: checked against the target's contract when the pool is built.
_DRIFT = os.environ.get("FAIRGATE_DRIFT", "")
# FAIRGATE_LOAD_ANSWERS: a file that gets every answer's status and application ids (the soak
# checks each 200 has its record).
log_answers(events)


@events.test_start.add_listener
def _build_pool(environment, **_kwargs) -> None:  # noqa: ANN001, ANN003 - Locust hook
    """Read the target's contract and synthesize the pool before any user starts, so the
    run's clock measures requests, not set-up (a short run could end before the first one)."""
    if environment.host:
        pool_for(environment.host, _DRIFT)


class LoanApplicant(FastHttpUser):
    wait_time = constant_throughput(_RATE) if _RATE > 0 else constant(0)

    def on_start(self) -> None:
        pool = pool_for(self.host, _DRIFT)
        # Each user walks the pool from its own offset: same bodies across runs.
        offset = next(_user_numbers) * 97 % len(pool.singles)
        self.singles = itertools.cycle(pool.singles[offset:] + pool.singles[:offset])
        self.batches = itertools.cycle(pool.batches)
        self.pairs = itertools.cycle(pool.pairs)

    @task(20)
    def decide(self) -> None:
        self.client.post("/decide", json=next(self.singles))

    @task(1)
    def decide_batch(self) -> None:
        self.client.post("/decide_batch", json=next(self.batches))

    @task(2)
    def probe_pair(self) -> None:
        self.client.post(
            "/decide_batch",
            json=next(self.pairs),
            headers=_PROBE_HEADERS,
            name=PROBE_PAIR,
        )
