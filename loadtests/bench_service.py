"""Comparison endpoints for ``fairgate bench``, served with the same settings as the service.

- ``POST /floor``: returns a constant; what BentoML costs before any work (the floor).
- ``POST /floor_validated``: the same, after validating the body as an ``Applicant``.
- ``POST /naive``: the obvious way: the applicant as a one-row pandas DataFrame, the
  scikit-learn pipeline and fairlearn's ``ThresholdOptimizer.predict``, per request.

The naive endpoint loads ``FAIRGATE_NAIVE_MODEL``, a joblib file that ``fairgate bench``
writes a moment earlier in the same run; the real service never loads a pickle.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel

from fairgate.schema import Applicant, columns_from_applicants, group_keys, synthetic_features
from service.gc_tuning import tune_gc
from service.metrics import LATENCY_BUCKETS


class Constant(BaseModel):
    ok: bool = True


class NaiveDecision(BaseModel):
    application_id: str
    approved: bool


CONSTANT = Constant()


@bentoml.service(
    name="fairgate-bench",
    workers=int(os.environ.get("FAIRGATE_WORKERS", "1")),
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    metrics={"duration": {"buckets": list(LATENCY_BUCKETS)}},
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}],
)
class BenchService:
    def __init__(self) -> None:
        path = os.environ.get("FAIRGATE_NAIVE_MODEL")
        self.optimizer = joblib.load(path) if path else None
        self.spec = synthetic_features(include_sensitive=True)
        self.counter = 0
        tune_gc(os.environ.get("FAIRGATE_GC", "default"))

    # async, like /decide: the floor is the cheapest endpoint BentoML can serve.
    @bentoml.api(route="/floor")
    async def floor(self) -> Constant:
        return CONSTANT

    # The floor plus BentoML parsing and validating the same Applicant body /decide takes:
    # separates the framework's input cost from fairgate's own work.
    @bentoml.api(route="/floor_validated")
    async def floor_validated(self, application: Applicant, /) -> Constant:
        return CONSTANT

    # The obvious way: a sync endpoint (BentoML runs it in its thread pool).
    @bentoml.api(route="/naive")
    def naive(self, application: Applicant, /) -> NaiveDecision:
        if self.optimizer is None:
            raise RuntimeError("FAIRGATE_NAIVE_MODEL is not set")
        columns = columns_from_applicants([application])
        frame = pd.DataFrame(self.spec.build(columns))
        self.counter += 1
        approved = self.optimizer.predict(
            frame,
            sensitive_features=group_keys(columns, ("gender",)),
            random_state=self.counter,
        )
        return NaiveDecision(
            application_id=application.application_id, approved=bool(np.asarray(approved)[0])
        )
