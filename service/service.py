"""BentoML service: POST /decide, POST /decide_batch, GET /policy, GET /decisions/{id}, plus
BentoML's /healthz, /livez, /readyz, /metrics and /docs.json.

The model is declared on the class (``bento_model``), so ``bentoml build`` packs it into the
Bento. Which one: ``FAIRGATE_MODEL`` (default ``fairgate-loan:latest``), or the Bento's own
model when serving a Bento; looked up once at import, with the contract the request model is
built from (``service/served_contract.py``). The ``on_deployment`` hook verifies it and hands
its concrete ``name:version`` to every worker, restarted ones included. Everything else a
worker needs lives on the service instance, configured from ``service/config.py`` when the
worker starts; module level holds only what BentoML reads at import.
Probe requests carry the header ``X-Fairgate-Probe: 1``. Every decision is in the decision
record before it is answered (``service/recording.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
import orjson
from bentoml import get_current_service
from bentoml.exceptions import BentoMLException
from pydantic import Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fairgate.artifacts import ArtifactError, load_serving_bundle
from fairgate.contract import contract_to_mapping
from fairgate.contract_request import request_model
from fairgate.decider import Decider
from fairgate.draw import DrawKey
from fairgate.policy import ThresholdPolicy
from fairgate.schema import MAX_BATCH
from record import RecordUnavailable, open_record
from record.policy_store import Active, PolicyStore, Scope
from record.store import store_errors
from service.api_models import BatchDecision, Decision, PolicyView
from service.config import (
    DEFAULT_MAX_BODY_BYTES,
    ConfigError,
    ServiceConfig,
    absolute_record_url,
    service_config,
    startup_line,
)
from service.decisions_api import DecisionsRoute, RecordReader, decisions_app
from service.error_response import error_response
from service.gc_tuning import tune_gc
from service.metrics import LATENCY_BUCKETS, ServiceMetrics, create_metrics, observe_many
from service.policy_watch import PolicyWatch
from service.probe_guard import ProbeGuard, verified_probe
from service.recording import DecisionRecorder, unavailable_response
from service.request_guard import RequestGuard
from service.served_contract import bento_model_tag, names_model, served_model

# What BentoML reads at import: the model to declare, and the request type built from its
# contract. From a Bento (``<bento>/src/service/service.py``), the Bento's own model.
SERVED = served_model(os.environ, packed=bento_model_tag(Path(__file__).resolve().parents[1]))
Applicant = request_model(SERVED.contract)


class _DropClientErrors(logging.Filter):
    """BentoML logs a traceback at ERROR for every request that fails validation; those are
    the client's 400s, not our faults, and would flood logs under bad traffic."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


# The mounted app and the middleware are declared at import, before BentoML creates the
# service instance; they ask for it per request (``bentoml.get_current_service``).
def _worker() -> Any:
    """This worker's ``DecisionService`` instance, or None before BentoML has created it."""
    try:
        return get_current_service()
    except BentoMLException:
        return None


async def _policy_view(_: Request) -> Response:
    worker = _worker()
    if worker is None:  # asked before the worker's start-up finished
        return error_response(503, "service", "starting", "the model is still loading")
    return JSONResponse(worker.policy_view().model_dump())


def _record_reader() -> RecordReader | None:
    worker = _worker()
    return None if worker is None else worker.record_reader


def _probe_token() -> str | None:
    worker = _worker()
    return None if worker is None else worker.config.probe_token


def _count_refused(reason: str) -> None:
    worker = _worker()
    if worker is not None:
        worker.metrics.probe_refused.labels(reason).inc()


def _max_body_bytes() -> int:
    """The request guard's limit, from the worker's configuration once it has started."""
    worker = _worker()
    return DEFAULT_MAX_BODY_BYTES if worker is None else worker.config.max_body_bytes


policy_app = Starlette(routes=[Route("/", _policy_view, methods=["GET"])])
record_app = decisions_app(_record_reader)


def _check_worker_count(config: ServiceConfig) -> None:
    """FAIRGATE_WORKERS reaches BentoML only through ``service.launch``; under a plain
    ``bentoml serve`` a set value that BentoML does not apply is an error, not ignored."""
    if "FAIRGATE_WORKERS" not in os.environ:
        return
    from bentoml._internal.configuration.containers import BentoMLContainer

    applied = BentoMLContainer.config.services.get().get("fairgate", {}).get("workers")
    if applied != config.workers:
        raise ConfigError(
            [
                f"FAIRGATE_WORKERS={config.workers} but BentoML is configured for {applied} "
                "worker(s): start with `fairgate serve` or `python -m service.launch serve`, "
                'or set BENTOML_CONFIG_OVERRIDES=\'{"services": {"fairgate": {"workers": '
                f"{config.workers}}}}}}}'"
            ]
        )


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@bentoml.mount_asgi_app(policy_app, path="/policy")
@bentoml.service(
    name="fairgate",
    # The worker count comes from outside, never from an import-time environment read:
    # ``service.launch`` passes FAIRGATE_WORKERS to BentoML as
    # BENTOML_CONFIG_OVERRIDES={"services": {"fairgate": {"workers": N}}}.
    workers=1,
    traffic={"timeout": 30},
    # BentoML's default buckets start at 5 ms; decisions take well under that, so
    # p50/p99 from Prometheus need finer ones to say anything.
    metrics={"duration": {"buckets": list(LATENCY_BUCKETS)}},
    logging={"access": {"enabled": False}},
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}],
)
class DecisionService:
    # Declared, so that `bentoml build` packs it into the Bento (`bentoml get` lists it) and
    # `bentoml serve` resolves it before start-up: the concrete tag the request model above
    # was built from. ``self.bento_model`` is that model in the store.
    bento_model = bentoml.models.BentoModel(SERVED.tag)

    @bentoml.on_deployment
    def prepare_deployment() -> None:
        """Once, in the server process, before any worker starts.

        Checks the configuration and the model (every checksum), and pins the model:
        ``FAIRGATE_MODEL`` is replaced by the concrete tag, which every worker inherits
        (BentoML creates the worker watchers after this hook, copying this process's
        environment; a restarted worker gets the same copy). A bad entry stops ``bentoml
        serve`` itself with the message (a worker failing in ``__init__`` would only be
        restarted, forever).
        """
        try:
            config = service_config(os.environ)
            _check_worker_count(config)
            bundle = load_serving_bundle(
                SERVED.tag, config.policy, artifact_key=config.artifact_key
            )
        except (ConfigError, ArtifactError) as error:
            raise SystemExit(f"fairgate: refusing to start: {error}") from error
        os.environ["FAIRGATE_MODEL"] = SERVED.tag
        record_url = absolute_record_url(config.record_url, Path.cwd())
        if record_url is not None:
            # Every worker writes where this process checked, whatever directory it runs in;
            # the store's tables are made once here, not raced for by the workers.
            os.environ["FAIRGATE_RECORD_URL"] = record_url
            try:
                open_record(record_url).close()
            except store_errors() as error:
                raise SystemExit(
                    f"fairgate: refusing to start: cannot open the decision record "
                    f"(FAIRGATE_RECORD_URL): {error}"
                ) from error
        # BentoML's INFO lines go through its own logger's handlers (the root logs WARNING).
        logging.getLogger("bentoml.fairgate").info(
            startup_line(
                config, SERVED.tag, bundle.contract.name, bundle.contract.version, record_url
            )
        )

    def __init__(self) -> None:
        config = service_config(os.environ)
        if os.environ.get("FAIRGATE_MODEL") and not names_model(config.model, SERVED.tag):
            raise ArtifactError(
                f"FAIRGATE_MODEL={config.model!r}, but this process's request model was built "
                f"from {SERVED.tag} when the service was imported; restart the service"
            )
        self.config = config
        # The declared model, verified (every checksum) and compiled for serving.
        bundle = load_serving_bundle(
            str(self.bento_model.tag), config.policy, artifact_key=config.artifact_key
        )
        self.bundle = bundle
        self.draw_key = DrawKey(config.draw_key) if config.policy == "randomized" else None
        # Replaced whole (one assignment) when another policy version becomes active; a
        # request keeps the decider it started with.
        self.decider = Decider(bundle, self.draw_key)
        self.model_version = bundle.tag
        # One record writer per worker (one hash chain per worker process).
        self.recorder = (
            None
            if config.record_url is None
            else DecisionRecorder.open(
                config.record_url,
                id_field=bundle.contract.id_field.name,
                model_version=bundle.tag,
            )
        )
        self.record_reader = RecordReader(
            None if self.recorder is None else self.recorder.writer.store,
            config.record_read_token,
        )
        self.metrics: ServiceMetrics = create_metrics()
        self._children: dict[tuple[bool, str, str], Any] = {}
        for reason in ("no_token_configured", "bad_token"):
            self.metrics.probe_refused.labels(reason)
        self._show_policy(bundle.policy, 1)
        # The policy's attributes in the contract's names, e.g. "gender" or "sex&age_band":
        # a label on every decision series, so rules and dashboards need no hard-coded names.
        self.attribute = bundle.contract.groups.separator.join(bundle.policy.attributes)
        # Every known group's series exists from the start: a group never approved must
        # show as 0 in approval-rate rules, not be missing from them.
        for group in bundle.policy.rules:
            for outcome in ("approve", "deny"):
                self.metrics.decisions.labels(self.attribute, group, outcome)
        self._contract_view = contract_to_mapping(bundle.contract)
        # The policy store lives in the record's database: no record, no online policy.
        self.policy_watch = (
            None
            if config.record_url is None or config.policy_poll == 0
            else PolicyWatch(
                PolicyStore.open(config.record_url),
                Scope(bundle.tag, bundle.policy.mode),
                bundle.policy,
                self._use_policy,
                interval=config.policy_poll,
            )
        )
        if self.policy_watch is not None:
            # The active version before the first request: a start, not a change (neither
            # counted nor logged as one). A store that cannot give it is retried by the watch;
            # meanwhile the trained policy decides (a worker failing here would be restarted
            # forever, on every replica).
            self._starting = True
            try:
                self.policy_watch.check()
            except (*store_errors(), ValueError, KeyError) as error:
                logging.getLogger("bentoml.fairgate").warning(
                    "fairgate: cannot read the active policy version at start, serving the "
                    "trained %s until it can: %s", bundle.policy.version, error,
                )  # fmt: skip
            self._starting = False
            self.policy_watch.start()
        logging.getLogger("bentoml._internal.server.http_app").addFilter(_DropClientErrors())
        tune_gc(config.gc)

    def _show_policy(self, policy: ThresholdPolicy, value: int) -> None:
        scorer = self.bundle.scorer.kind
        self.metrics.info.labels(self.model_version, policy.version, policy.mode, scorer,
                                 policy.constraint).set(value)  # fmt: skip
        self.metrics.policy_info.labels(policy.version, policy.mode).set(value)

    def _use_policy(self, policy: ThresholdPolicy, active: Active) -> None:
        """Decide with ``policy`` from now on (the policy watch's thread calls this)."""
        old = self.decider.policy
        self.decider = Decider(replace(self.bundle, policy=policy), self.draw_key)
        self._show_policy(old, 0)
        self._show_policy(policy, 1)
        if getattr(self, "_starting", False):
            return
        self.metrics.policy_changes.inc()
        how, since = "trained policy", active.since
        if since is not None:
            how = f"{since.kind} by {since.author}: {since.reason or 'no reason given'}"

        logging.getLogger("bentoml.fairgate").warning(
            "fairgate: policy change %s -> %s (%s; model %s, mode %s, worker pid %d)",
            old.version, policy.version, how, self.model_version, policy.mode, os.getpid(),
        )  # fmt: skip

    def policy_view(self) -> PolicyView:
        """``GET /policy``: the active version, its rules and the scope's history."""
        policy, watch = self.decider.policy, self.policy_watch
        return PolicyView(
            model_version=self.model_version,
            policy_mode=policy.mode,
            policy_version=policy.version,
            trained_policy_version=self.bundle.policy.version,
            policy=policy.to_dict(),
            history=[] if watch is None else watch.history(),
            policy_poll_seconds=self.config.policy_poll if watch is not None else 0.0,
            training=self.bundle.metadata,
            contract=self._contract_view,
            contract_toml=self.bundle.contract_text,
            synthesis=self.bundle.synthesis,
        )

    @bentoml.on_shutdown
    async def close_record(self) -> None:
        """Commit the records still queued, then stop the writer (BentoML awaits it)."""
        if self.policy_watch is not None:
            self.policy_watch.stop()
        if self.recorder is not None:
            await self.recorder.aclose()

    async def _decide(
        self, applicants: Sequence[Applicant], probe: bool
    ) -> list[dict[str, Any]] | Response:
        decider = self.decider  # this request's version, whatever happens meanwhile
        result = decider.decide(applicants)
        if self.recorder is not None:
            try:
                await self.recorder.append(applicants, result, probe, decider)
            except RecordUnavailable as error:
                # Unrecorded, so unanswered and uncounted: the client retries for the same
                # decision (decisions are reproducible).
                return unavailable_response(error)
        self._count(result.group, result.approved, result.score, result.unseen, probe)
        names, texts = decider.rule_names, decider.rule_texts
        version, mode = decider.policy.version, decider.policy.mode
        # The contract names its id field; the response always calls it application_id.
        id_field = decider.contract.id_field.name
        # Plain dicts in ``Decision``'s field order, serialized once by orjson: building a
        # pydantic model per decision and BentoML's serialization of it cost ~14 us per
        # decision (half of /decide_batch's time). The annotations still say ``Decision``
        # (the OpenAPI document), and the tests check responses against that schema.
        return [
            {
                "application_id": getattr(a, id_field),
                "decision": "approve" if ok else "deny",
                "approved": ok,
                "score": s,
                "approval_probability": p,
                "group": g,
                "rule": names[i],
                "rule_text": texts[i],
                "policy_version": version,
                "policy_mode": mode,
                "model_version": self.model_version,
                "probe": probe,
                "reasons": [{"code": r.code, "text": r.text} for r in why],
            }
            for a, ok, s, p, g, i, why in zip(
                applicants,
                result.approved.tolist(),
                result.score.tolist(),
                result.probability.tolist(),
                result.group.tolist(),
                result.rule_index.tolist(),
                result.reasons,
                strict=True,
            )
        ]

    def _count(
        self,
        groups: np.ndarray,
        approved: np.ndarray,
        scores: np.ndarray,
        unseen: np.ndarray,
        probe: bool,
    ) -> None:
        counter = self.metrics.probe_decisions if probe else self.metrics.decisions
        if len(groups) == 1:  # the common case, without numpy's per-call overhead
            outcome = "approve" if approved[0] else "deny"
            key = (probe, groups[0], outcome)
            child = self._children.get(key)
            if child is None:  # labels() takes a lock and builds a key on every call
                child = self._children[key] = counter.labels(self.attribute, groups[0], outcome)
            child.inc()
            if unseen[0]:
                traffic = "probe" if probe else "live"
                self.metrics.unseen_groups.labels(self.attribute, groups[0], traffic).inc()
            if not probe:
                self.metrics.score.observe(float(scores[0]))
            return
        keys, counts = np.unique(
            np.char.add(groups.astype(str), np.where(approved, "|approve", "|deny")),
            return_counts=True,
        )
        for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
            group, outcome = key.rsplit("|", 1)
            counter.labels(self.attribute, group, outcome).inc(n)
        if unseen.any():
            traffic = "probe" if probe else "live"
            for group in groups[unseen].tolist():
                self.metrics.unseen_groups.labels(self.attribute, group, traffic).inc()
        if not probe:
            observe_many(self.metrics.score, scores)

    # async: the work is ~0.1 ms of numpy per application, cheaper than BentoML's hop to a
    # worker thread and back that a sync ``def`` API costs on every request.
    # No ``ctx`` parameter: with one, BentoML copies its status and headers onto every
    # response (a Response returned here keeps its own, the 503's included); the probe flag
    # comes from ProbeGuard, which has refused (403) every claim without the right token.
    @bentoml.api(route="/decide")
    async def decide(self, application: Applicant, /) -> Decision:
        """Decide one application. Send ``X-Fairgate-Probe: 1`` to mark a probe."""
        decided = await self._decide([application], verified_probe())
        if isinstance(decided, Response):
            return decided  # type: ignore[return-value]
        return _json(decided[0])  # type: ignore[return-value]

    @bentoml.api(route="/decide_batch")
    async def decide_batch(
        self,
        applications: Annotated[list[Applicant], Field(min_length=1, max_length=MAX_BATCH)],
    ) -> BatchDecision:
        """Decide 1 to MAX_BATCH (1000) applications: body ``{"applications": [...]}``."""
        decisions = await self._decide(applications, verified_probe())
        if isinstance(decisions, Response):
            return decisions  # type: ignore[return-value]
        return _json({"count": len(decisions), "decisions": decisions})  # type: ignore[return-value]


DecisionService.add_asgi_middleware(
    ProbeGuard,
    token=_probe_token,
    refused=_count_refused,
    paths=("/decide", "/decide_batch"),
)
DecisionService.add_asgi_middleware(DecisionsRoute, target=record_app)
DecisionService.add_asgi_middleware(
    RequestGuard,
    max_bytes=_max_body_bytes,
    json_paths=("/decide", "/decide_batch"),
)
