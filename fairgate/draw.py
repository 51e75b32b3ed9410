"""The keyed draw that realises a randomized policy's approval probability.

A randomized threshold (fairlearn's ``ThresholdOptimizer``) approves with probability p; the
uniform number compared with p must not be something a caller can re-roll. It is therefore
HMAC-SHA256, under a server-side secret (``FAIRGATE_DRAW_KEY``), of a canonical encoding of
the applicant's own fields, excluding the caller-chosen application id (resubmitting under a
fresh id changes nothing) and the protected attributes (a counterfactual twin that differs
only in gender or age shares the draw, so the prober measures the policy, not the dice).
Without the key nobody can compute a draw offline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Final

import numpy as np

from fairgate.schema import APPLICANT_FIELDS, PROTECTED_FIELDS

ID_FIELD: Final[str] = "application_id"
MIN_KEY_BYTES: Final[int] = 16
_TWO_64: Final[float] = float(2**64)


def draw_fields() -> tuple[str, ...]:
    """The applicant fields that feed the draw, in encoding order (the one place this is
    decided): every field but the application id and the protected attributes."""
    excluded = {ID_FIELD, *PROTECTED_FIELDS}
    return tuple(name for name in APPLICANT_FIELDS if name not in excluded)


def _canonical(value: object) -> object:
    # Numbers as float64 (the service's columns hold ints as floats too): 34 and 34.0 are
    # the same applicant and must draw the same number.
    if isinstance(value, str):
        return value
    return float(value)  # type: ignore[arg-type]


def encode_rows(columns: Mapping[str, np.ndarray]) -> list[bytes]:
    """One canonical byte string per applicant: JSON of the draw fields' values in order."""
    fields = draw_fields()
    values = zip(*(np.asarray(columns[name]).tolist() for name in fields), strict=True)
    return [
        json.dumps([_canonical(v) for v in row], separators=(",", ":")).encode() for row in values
    ]


class DrawKey:
    """HMAC-SHA256 under a secret: ``draws(columns)`` gives uniform [0, 1) numbers."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"the draw key must be at least {MIN_KEY_BYTES} bytes")
        # Copying a MAC primed with the key is cheaper than re-keying per applicant.
        self._primed = hmac.new(secret, digestmod=hashlib.sha256)

    def draws(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """First 8 bytes of each MAC, big-endian, divided by 2**64."""
        digests = []
        for encoded in encode_rows(columns):
            mac = self._primed.copy()
            mac.update(encoded)
            digests.append(mac.digest()[:8])
        return np.frombuffer(b"".join(digests), dtype=">u8") / _TWO_64
