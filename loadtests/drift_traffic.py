"""The drift loop's traffic (``loadtests.drift_loop``): ``/decide_batch`` requests sent from
threads at a steady rate, every answer's status and policy versions, and the moments (on the
wall clock and the monotonic one) that cut the answers into phases.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Self

import httpx

BATCH: Final[int] = 10  # applications per /decide_batch request
SENDERS: Final[int] = 4  # threads sending side by side


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    status: int  # 0: no answer (a connection error)
    versions: frozenset[str]  # policy_version of each decision of a 200

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.versions)


@dataclass(frozen=True)
class Moment:
    wall: datetime
    mono: float

    @classmethod
    def now(cls) -> Moment:
        return cls(datetime.now(UTC), time.monotonic())

    def iso(self) -> str:
        return self.wall.isoformat().replace("+00:00", "Z")


class Traffic:
    """``/decide_batch`` requests of ``BATCH`` applications at ``rate`` a second in all, from
    ``SENDERS`` threads, each request on a new connection (the workers share the listening
    socket, and a kept-alive connection would stay with one of them), cycling through
    ``applications``."""

    def __init__(self, url: str, applications: Sequence[dict], *, rate: float) -> None:
        self.url = url
        self.period = SENDERS / rate
        self.answers: list[Answer] = []
        self._population = list(applications)
        self._next = 0
        self._generation = 0
        self._in_flight: dict[int, int] = {}  # sender -> generation of its request in flight
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(i,), name=f"drift-loop-{i}", daemon=True)
            for i in range(SENDERS)
        ]

    def _take(self, sender: int) -> list[dict]:
        with self._changed:
            start, self._next = self._next, self._next + BATCH
            self._in_flight[sender] = self._generation
            population = self._population
        return [population[(start + i) % len(population)] for i in range(BATCH)]

    def _send(self, sender: int) -> None:
        due = time.monotonic() + sender * self.period / SENDERS  # spread the senders
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.url, timeout=30, limits=fresh) as client:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                body = {"applications": self._take(sender)}
                sent = time.monotonic()
                status, versions = 0, frozenset[str]()
                # A 200 without its decisions' versions counts as failed (``LoopResult.failed``).
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    response = client.post("/decide_batch", json=body)
                    status = response.status_code
                    decisions = response.json()["decisions"] if status == 200 else []
                    versions = frozenset(d["policy_version"] for d in decisions)
                with self._changed:
                    self.answers.append(Answer(sent, status, versions))
                    del self._in_flight[sender]
                    self._changed.notify_all()
                due = max(due + self.period, time.monotonic())  # late: no burst to catch up

    def switch(self, applications: Sequence[dict]) -> None:
        """Send ``applications`` from now on; returns once no request of the earlier ones is
        in flight, so every decision after it is of the new population."""
        with self._changed:
            self._population, self._next = list(applications), 0
            self._generation += 1
            now = self._generation
            self._changed.wait_for(lambda: now - 1 not in self._in_flight.values(), timeout=30)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)


def seconds_to_last_other(
    answers: Sequence[Answer], version: str, since: float, until: float = float("inf")
) -> float:
    """Seconds from ``since`` to the last request sent before ``until`` whose answer carried
    a version other than ``version`` (0.0 if none): after it, every answer carries it."""
    other = [
        a.sent for a in answers
        if since <= a.sent < until and a.ok and a.versions != {version}
    ]  # fmt: skip
    return max(other, default=since) - since
