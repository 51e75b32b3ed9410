"""An optional log of every answer a Locust run got, for checking the decision record.

With ``FAIRGATE_LOAD_ANSWERS=PATH`` each response adds one JSON line to PATH: its status code,
the time it was sent (Unix seconds), for a 200 the application id of every decision in its
body (one for ``/decide``, each of a batch), and for a 503 its ``Retry-After`` header.
``python -m loadtests.soak`` compares these with the records in the store: every 200 must
have its record. Status 0 is a connection error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import orjson

ENV_VAR = "FAIRGATE_LOAD_ANSWERS"


class AnswerLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[str] | None = None

    def __call__(self, response: Any = None, start_time: float = 0.0, **_: Any) -> None:
        """Locust's ``request`` event."""
        status = getattr(response, "status_code", 0) or 0
        headers = getattr(response, "headers", None) or {}
        retry_after = headers.get("Retry-After") if status == 503 else None
        ids: list[str] = []
        if status == 200:
            body = orjson.loads(response.content)
            decisions = body.get("decisions", [body])
            ids = [str(d["application_id"]) for d in decisions]
        if self._out is None:
            self._out = self.path.open("a", buffering=1)  # a line at a time: nothing lost
        self._out.write(orjson.dumps([status, start_time, ids, retry_after]).decode() + "\n")


def log_answers(events: Any) -> None:
    """Hook the log into Locust's events when ``FAIRGATE_LOAD_ANSWERS`` is set."""
    path = os.environ.get(ENV_VAR)
    if path:
        events.request.add_listener(AnswerLog(Path(path)))


def read_answers(path: Path) -> list[tuple[int, float, list[str], str | None]]:
    """(status, sent at, application ids, a 503's Retry-After) per response, as written."""
    answers = []
    for line in path.read_text().splitlines():
        status, sent, ids, retry_after = orjson.loads(line)
        answers.append((int(status), float(sent), list(ids), retry_after))
    return answers
