"""Locust users for ``fairgate bench``: one endpoint each, so runs compare like with like.

Run one class at a time, e.g. ``locust -f loadtests/benchfile.py DecideUser``.
``FAIRGATE_LOAD_RATE`` (requests per second per user) turns the closed loop into a fixed
rate, for latency below saturation.
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, constant_throughput, task

from loadtests.pool import synthetic_pool_from_env

# Every endpoint compared gets the same bodies: the default book's (the floors have no /policy).
POOL = synthetic_pool_from_env()
_RATE = float(os.environ.get("FAIRGATE_LOAD_RATE", "0"))
_WAIT = constant_throughput(_RATE) if _RATE > 0 else constant(0)
_user_numbers = itertools.count()


class _PoolUser(FastHttpUser):
    abstract = True
    wait_time = _WAIT

    def on_start(self) -> None:
        offset = next(_user_numbers) * 97 % len(POOL.singles)
        self.singles = itertools.cycle(POOL.singles[offset:] + POOL.singles[:offset])
        self.batches = itertools.cycle(POOL.batches)


class FloorUser(_PoolUser):
    @task
    def floor(self) -> None:
        self.client.post("/floor", json=next(self.singles))


class FloorValidatedUser(_PoolUser):
    @task
    def floor_validated(self) -> None:
        self.client.post("/floor_validated", json=next(self.singles))


class DecideUser(_PoolUser):
    @task
    def decide(self) -> None:
        self.client.post("/decide", json=next(self.singles))


class NaiveUser(_PoolUser):
    @task
    def naive(self) -> None:
        self.client.post("/naive", json=next(self.singles))


class BatchUser(_PoolUser):
    @task
    def decide_batch(self) -> None:
        self.client.post("/decide_batch", json=next(self.batches))
