"""The service's side of the decision record: one writer per worker, one record per decision.

Every decision, live and probe (flagged), is appended before its response is sent: the API
awaits ``DecisionRecorder.append`` and answers only once the record is committed. When the
store cannot take it (``RecordUnavailable``: PostgreSQL down, the SQLite file locked or its
disk full) the answer is 503 with ``Retry-After`` and the decision is counted nowhere: a
decision is reproducible, so the client's retry gets the same one (docs/record.md says why
we fail fast instead of spooling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from starlette.responses import Response

from fairgate.decider import Decider, Decisions
from record import Appender, RecordUnavailable, RecordWriter, open_record, parse_record_url
from record.entry import encode, format_time
from record.process_writer import ProcessWriter
from service.error_response import error_response

UNAVAILABLE: Final[str] = "decision record unavailable"


class DecisionRecorder:
    """Turns a call's decisions into records and appends them through one writer."""

    def __init__(
        self,
        writer: Appender,
        *,
        id_field: str,
        model_version: str,
    ) -> None:
        self.writer = writer
        self.id_field = id_field
        self.model_version = model_version

    @classmethod
    def open(cls, url: str, **names: Any) -> DecisionRecorder:
        """A recorder writing to the store ``url`` names: a SQLite file from a writer process
        of the worker's own (``ProcessWriter``: SQLite's work leaves the worker's GIL and
        core), PostgreSQL from a thread (its driver waits on the network, not the CPU)."""
        if parse_record_url(url).backend == "sqlite":
            return cls(ProcessWriter(url, open_record(url)).start(), **names)
        return cls(RecordWriter(open_record(url)).start(), **names)

    def rows(
        self,
        applicants: Sequence[Any],
        result: Decisions,
        probe: bool,
        now: datetime,
        decider: Decider,
    ) -> list[tuple[Any, ...]]:
        """One encoded record per applicant (``record.entry.encode``, no ``Record``
        object in between: a quarter of a batch's recording time); ``request`` is the
        validated request's fields, in the contract's names (the request model forbids
        unknown fields and coerces nothing). ``decider`` is the one that decided: its policy
        version and rule names, whichever version the worker has switched to since."""
        draws = [None] * len(applicants) if result.draw is None else result.draw.tolist()
        time_text = format_time(now)
        names, model, policy, id_field = (decider.rule_names, self.model_version,
                                          decider.policy.version, self.id_field)  # fmt: skip
        return [
            encode(
                time_text,
                getattr(a, id_field),
                a.__dict__,
                s,
                g,
                names[i],
                d,
                p,
                "approve" if ok else "deny",
                [{"code": r.code, "text": r.text} for r in why],
                model,
                policy,
                probe,
            )
            for a, ok, s, p, g, i, d, why in zip(
                applicants,
                result.approved.tolist(),
                result.score.tolist(),
                result.probability.tolist(),
                result.group.tolist(),
                result.rule_index.tolist(),
                draws,
                result.reasons,
                strict=True,
            )
        ]

    async def append(
        self, applicants: Sequence[Any], result: Decisions, probe: bool, decider: Decider
    ) -> None:
        """Record the decisions ``decider`` made; returns once committed, raises
        ``RecordUnavailable`` if not."""
        now = datetime.now(UTC)
        await self.writer.append_prepared(self.rows(applicants, result, probe, now, decider))

    async def aclose(self) -> None:
        """Commit what is queued and stop the writer (worker shutdown): the writer process
        gets what the worker still buffers and is waited for; a thread writer is joined."""
        await self.writer.aclose()
        self.writer.store.close()


def retry_after_seconds(error: RecordUnavailable) -> int:
    """Whole seconds, rounded up (Retry-After takes an integer), at least 1."""
    return max(1, math.ceil(error.retry_after))


def unavailable_response(error: RecordUnavailable) -> Response:
    """503 with ``Retry-After``, in the shape of every other error (``error_response``).

    The message names the store's failure (``RecordUnavailable`` carries no request data).
    """
    seconds = retry_after_seconds(error)
    message = f"{error}; nothing was decided, retry after {seconds} s"
    return error_response(
        503, "record", UNAVAILABLE, message, kind="record_unavailable",
        headers={"Retry-After": str(seconds)},
    )  # fmt: skip
