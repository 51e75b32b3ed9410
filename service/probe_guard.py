"""ASGI middleware: a request that claims to be a probe must prove it, or get 403.

A claim (``X-Fairgate-Probe: 1``) without the service's token is refused before the body is
read: it is decided for no one, and counted (``fairgate_probe_refused_total``) so a caller
trying to hide decisions from the live counters shows up on the dashboard. A claim with
the right token is let through with ``verified_probe()`` true for the rest of the request:
the guard is the one place that decides what is a probe.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fairgate.probe_auth import PROBE_HEADER, PROBE_TOKEN_HEADER, claims_probe, token_matches
from service.error_response import error_response
from service.request_guard import Scope

_CLAIM = PROBE_HEADER.lower().encode("latin-1")
_TOKEN = PROBE_TOKEN_HEADER.lower().encode("latin-1")
# Set for the request being served (each ASGI request runs in a task of its own, with its
# own copy of the context); the API handlers read it instead of taking BentoML's ``ctx``,
# whose headers and status handling every /decide would pay for (docs/benchmarks.md).
_PROBE: ContextVar[bool] = ContextVar("fairgate_verified_probe", default=False)


def verified_probe() -> bool:
    """Whether the request being served is a probe whose token the guard accepted."""
    return _PROBE.get()


class ProbeGuard:
    def __init__(
        self,
        app: Any,
        token: Callable[[], str | None],
        refused: Callable[[str], None],
        paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        # Asked per request: the token is configured when the worker starts, after this
        # middleware was declared at import.
        self.token = token
        self.refused = refused
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        # Any claim counts, however many probe headers a request repeats: a claim followed
        # by "X-Fairgate-Probe: 0" is still a claim, to be proved or refused.
        if not any(name == _CLAIM and claims_probe(value.decode("latin-1"))
                   for name, value in headers):  # fmt: skip
            await self.app(scope, receive, send)
            return
        expected = self.token()
        tokens = [value.decode("latin-1") for name, value in headers if name == _TOKEN]
        given = tokens[0] if len(tokens) == 1 else None  # one token, not several guesses
        if token_matches(given, expected):
            marked = _PROBE.set(True)
            try:
                await self.app(scope, receive, send)
            finally:
                _PROBE.reset(marked)
            return
        reason = "no_token_configured" if expected is None else "bad_token"
        self.refused(reason)
        detail = (
            "this service accepts no probes (FAIRGATE_PROBE_TOKEN is not set)"
            if expected is None
            else f"a probe must send {PROBE_TOKEN_HEADER} with the service's FAIRGATE_PROBE_TOKEN"
        )
        await error_response(403, PROBE_HEADER, "probe claim refused", detail)(scope, receive, send)
