"""Locust's failures CSV, read for the one failure a user can fix at once: a refused probe token.

A probe pair (marked ``X-Fairgate-Probe: 1``) without the target's probe token gets a 403,
by design; against ``--target`` that means FAIRGATE_PROBE_TOKEN is missing or is not the
target's, and the failed SLO should say so rather than leave a failure ratio to puzzle over.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROBE_PAIR: Final[str] = "/decide_batch (probe pair)"
PROBE_TOKEN_MISSING: Final[str] = (
    "probe pairs were refused (403, {count:,} times): the probe token is missing; set "
    "FAIRGATE_PROBE_TOKEN to the token the target's service was started with"
)
PROBE_TOKEN_REFUSED: Final[str] = (
    "probe pairs were refused (403, {count:,} times): the target does not accept "
    "FAIRGATE_PROBE_TOKEN; set it to the token the target's service was started with"
)
_FORBIDDEN: Final[re.Pattern[str]] = re.compile(r"\b403\b")


@dataclass(frozen=True)
class Failure:
    """One row of Locust's ``<prefix>_failures.csv``."""

    method: str
    name: str
    error: str
    occurrences: int


def read_failures(path: Path) -> list[Failure]:
    """Every row of a Locust ``_failures.csv``; none when the file is missing."""
    try:
        with path.open(newline="") as handle:
            return [
                Failure(row["Method"], row["Name"], row["Error"], int(row["Occurrences"]))
                for row in csv.DictReader(handle)
            ]
    except FileNotFoundError:
        return []


def probe_token_hint(failures: list[Failure], token_given: bool) -> str | None:
    """What to do when the target refused the probe pairs, or None if it did not.

    >>> refused = [Failure("POST", PROBE_PAIR, "BadStatusCode(code=403)", 12)]
    >>> probe_token_hint(refused, token_given=False)[:47]
    'probe pairs were refused (403, 12 times): the p'
    """
    count = sum(
        f.occurrences for f in failures if f.name == PROBE_PAIR and _FORBIDDEN.search(f.error)
    )
    if not count:
        return None
    return (PROBE_TOKEN_REFUSED if token_given else PROBE_TOKEN_MISSING).format(count=count)
