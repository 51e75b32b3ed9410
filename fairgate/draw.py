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
from collections.abc import Mapping
from typing import Final

import numpy as np

from fairgate.contract import Contract

MIN_KEY_BYTES: Final[int] = 16
_TWO_64: Final[float] = float(2**64)


def draw_fields(contract: Contract) -> tuple[str, ...]:
    """The fields that feed the draw, in encoding order (the one place this is decided):
    every field of the contract but the application id and the protected attributes' fields."""
    excluded = {contract.id_field.name, *(p.field for p in contract.protected)}
    return tuple(name for name in contract.field_names if name not in excluded)


def encode_rows(columns: Mapping[str, np.ndarray], fields: tuple[str, ...]) -> list[bytes]:
    """One canonical byte string per applicant: the numeric draw fields (``fields``
    order) as IEEE-754 big-endian float64 (so 34 and 34.0 are the same applicant, and -0.0
    is 0.0; a missing optional number is NaN), then each text field as a 2-byte big-endian
    length and its UTF-8 bytes (a missing optional text: length 0xFFFF and no bytes, which
    no text can have, so it differs from "").

    Built column-wise with numpy: a per-row ``json.dumps`` would cost more than the HMAC.
    """
    n = len(columns[fields[0]])
    numeric, texts = [], []
    for name in fields:
        values = np.asarray(columns[name])
        if values.dtype.kind in "iuf":
            numeric.append(values.astype(np.float64) + 0.0)  # + 0.0 turns -0.0 into 0.0
        else:
            texts.append([_text(value) for value in values.tolist()])
    width = 8 * len(numeric)
    block = np.column_stack(numeric).astype(">f8").tobytes() if numeric else bytes(0)
    rows = [block[i * width : (i + 1) * width] for i in range(n)]
    for column in texts:
        rows = [row + text for row, text in zip(rows, column, strict=True)]
    return rows


_MISSING: Final[bytes] = b"\xff\xff"


def _text(value: str | None) -> bytes:
    if value is None:
        return _MISSING
    encoded = value.encode()
    return len(encoded).to_bytes(2, "big") + encoded


class DrawKey:
    """HMAC-SHA256 (RFC 2104) under a secret: ``draws(columns)`` gives uniform [0, 1) numbers.

    The construction is spelled out over two SHA-256 states primed with the padded key once:
    copying them per applicant is cheaper than ``hmac.digest``, which redoes the key set-up
    every call. Equal to ``hmac.digest(secret, row, "sha256")`` (tested).
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(f"the draw key must be at least {MIN_KEY_BYTES} bytes")
        block = hashlib.sha256().block_size
        key = hashlib.sha256(secret).digest() if len(secret) > block else secret
        key = key.ljust(block, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def draws(self, columns: Mapping[str, np.ndarray], fields: tuple[str, ...]) -> np.ndarray:
        """First 8 bytes of each MAC over ``encode_rows(columns, fields)``, big-endian, / 2**64."""
        digests = b"".join(self.mac(row)[:8] for row in encode_rows(columns, fields))
        return np.frombuffer(digests, dtype=">u8") / _TWO_64
