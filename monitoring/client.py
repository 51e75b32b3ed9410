"""HTTP client for any endpoint that takes a contract's applications in batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httpx
import numpy as np

from fairgate.probe_auth import PROBE_HEADER, PROBE_TOKEN_HEADER

MAX_REQUEST_BATCH: Final[int] = 1000
ERROR_KINDS: Final[tuple[str, ...]] = (
    "connection", "timeout", "http_5xx", "http_4xx", "bad_response", "contract",
)  # fmt: skip


class ProbeError(Exception):
    """A probe request failed; ``kind`` is a low-cardinality label for the errors metric."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DecisionClient:
    """Posts applicant tables to ``{target}{batch_path}`` marked as probes; ``fields`` (the
    contract's field names, in order) are the properties each application carries."""

    target: str
    timeout: float = 10.0
    batch_path: str = "/decide_batch"
    client: httpx.Client | None = None
    # The service's FAIRGATE_PROBE_TOKEN: without it a fairgate service refuses the probe
    # claim (403), so probes cannot be hidden from its live counters by just anyone.
    token: str | None = None

    def __post_init__(self) -> None:
        headers = {PROBE_HEADER: "1"} | ({PROBE_TOKEN_HEADER: self.token} if self.token else {})
        self.client = self.client or httpx.Client(timeout=self.timeout, headers=headers)
        self.fields: tuple[str, ...] = ()
        self.requests = 0
        # Every decision asked for, counted as sent, whether or not the request succeeds.
        self.decisions_sent = 0

    def decide(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Return (approved, score) per row, in order."""
        approved, scores, _ = self.decide_groups(columns)
        return approved, scores

    def records(self, columns: dict[str, np.ndarray]) -> list[dict]:
        names = self.fields or tuple(columns)
        rows = zip(*(columns[name].tolist() for name in names), strict=True)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def decide_groups(
        self, columns: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(approved, score, group) per row, in order; group is "" when the endpoint has none."""
        records = self.records(columns)
        approved, scores, groups = [], [], []
        for start in range(0, len(records), MAX_REQUEST_BATCH):
            chunk = records[start : start + MAX_REQUEST_BATCH]
            decisions = self._post(chunk)
            if len(decisions) != len(chunk):
                raise ProbeError(
                    "bad_response", f"asked {len(chunk)} decisions, got {len(decisions)}"
                )
            for item in decisions:
                try:
                    approved.append(bool(item["approved"]))
                    scores.append(float(item.get("score", np.nan)))
                    groups.append(str(item.get("group", "")))
                except (KeyError, TypeError, ValueError) as error:
                    raise ProbeError(
                        "bad_response", f"decision without 'approved': {item!r}"
                    ) from error
        return (
            np.array(approved, dtype=bool),
            np.array(scores, dtype=np.float64),
            np.array(groups, dtype=object),
        )

    def _post(self, records: list[dict]) -> list[dict]:
        assert self.client is not None
        self.requests += 1
        self.decisions_sent += len(records)
        try:
            response = self.client.post(
                f"{self.target}{self.batch_path}", json={"applications": records}
            )
        except httpx.TimeoutException as error:
            raise ProbeError("timeout", f"{self.target}: timed out") from error
        except httpx.HTTPError as error:
            raise ProbeError("connection", f"{self.target}: {error}") from error
        if response.status_code >= 500:
            raise ProbeError("http_5xx", f"{self.target}: HTTP {response.status_code}")
        if response.status_code == 403:
            raise ProbeError(
                "http_4xx",
                f"{self.target}: HTTP 403, probe refused: set FAIRGATE_PROBE_TOKEN (or "
                "FAIRGATE_PROBE_TOKEN_FILE) to the service's token",
            )
        if response.status_code >= 400:
            raise ProbeError(
                "http_4xx", f"{self.target}: HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            body = response.json()
            return body["decisions"] if isinstance(body, dict) else body
        except (ValueError, KeyError) as error:
            raise ProbeError("bad_response", f"{self.target}: unreadable body") from error

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
