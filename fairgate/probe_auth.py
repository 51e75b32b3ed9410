"""Who may mark a request as a probe: a shared secret, checked in constant time.

Probe decisions are kept out of the live fairness counters; if anyone could claim to be a
probe, anyone could hide their decisions from those counters. The service accepts the claim
(``X-Fairgate-Probe: 1``) only with ``X-Fairgate-Probe-Token`` equal to its
``FAIRGATE_PROBE_TOKEN``; with no token configured, every claim is refused. The token comes
from the variable itself or from the file ``FAIRGATE_PROBE_TOKEN_FILE`` names (the Docker
secrets convention: docker-compose generates one file that the service and prober share).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

PROBE_HEADER: Final[str] = "X-Fairgate-Probe"
PROBE_TOKEN_HEADER: Final[str] = "X-Fairgate-Probe-Token"
TOKEN_VARIABLE: Final[str] = "FAIRGATE_PROBE_TOKEN"
MIN_TOKEN_CHARS: Final[int] = 16
CLAIM_VALUES: Final[frozenset[str]] = frozenset({"1", "true", "yes"})


def claims_probe(value: str | None) -> bool:
    """Whether an ``X-Fairgate-Probe`` header value claims a probe."""
    return (value or "").strip().lower() in CLAIM_VALUES


def token_from_env(env: Mapping[str, str], name: str = TOKEN_VARIABLE) -> str | None:
    """``name``'s value, or the contents of the file ``{name}_FILE`` names; ``ValueError``
    naming the variable when the token is unreadable or shorter than ``MIN_TOKEN_CHARS``."""
    token = env.get(name) or None
    file = env.get(f"{name}_FILE") or None
    if token is not None and file is not None:
        raise ValueError(f"{name} and {name}_FILE are both set; keep one")
    if file is not None:
        try:
            token = Path(file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(f"{name}_FILE={file!r}: cannot read it ({error.strerror})") from error
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{name}: too short ({len(token)} characters); use {MIN_TOKEN_CHARS}+")
    return token


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no configured token matches nothing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)
