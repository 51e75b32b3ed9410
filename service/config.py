"""The service's configuration: one frozen object built by a pure function from a mapping.

``service_config(os.environ)`` is called in two places only: BentoML's ``on_deployment``
hook (once, in the server process, before any worker starts: a bad entry stops
``bentoml serve`` with every problem listed) and each worker's start-up. Nothing reads the
environment at import time.

| variable | default | meaning |
|---|---|---|
| FAIRGATE_MODEL | fairgate-loan:latest | model tag; resolved once per deployment |
| FAIRGATE_POLICY | mitigated | mitigated / randomized / unmitigated |
| FAIRGATE_WORKERS | 1 | BentoML API workers (passed to BentoML by ``fairgate.launch``) |
| FAIRGATE_MAX_BODY_BYTES | 2097152 | request body limit (413 above it) |
| FAIRGATE_GC | tuned | tuned / default, see ``gc_tuning.py`` |
| FAIRGATE_DRAW_KEY | (none) | secret for the randomized draw; required for ``randomized`` |
| FAIRGATE_ARTIFACT_KEY | (none) | verify the model's signature (HMAC) when set |
| FAIRGATE_PROBE_TOKEN | (none) | the token a probe must send; none: every probe claim refused |
| FAIRGATE_PROBE_TOKEN_FILE | (none) | a file holding that token instead (Docker secrets) |
| FAIRGATE_RECORD | on | on / off: off answers without a decision record (benchmarks only) |
| FAIRGATE_DATA_DIR | fairgate-data | the default record's directory (relative: to the cwd) |
| FAIRGATE_RECORD_URL | (in DATA_DIR) | sqlite:///$FAIRGATE_DATA_DIR/record.sqlite by default |
| FAIRGATE_RECORD_READ_TOKEN | (none) | bearer token of ``GET /decisions/{id}``; none: 404 |
| FAIRGATE_RECORD_READ_TOKEN_FILE | (none) | a file holding that token instead |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from fairgate.draw import MIN_KEY_BYTES
from fairgate.policy import POLICY_MODES, PolicyMode
from fairgate.probe_auth import token_from_env
from fairgate.record.url import RecordUrlError, parse_record_url
from service.gc_tuning import GC_MODES

DEFAULT_MODEL: Final[str] = "fairgate-loan:latest"
DEFAULT_DATA_DIR: Final[str] = "fairgate-data"
RECORD_FILE: Final[str] = "record.sqlite"
RECORD_SWITCH: Final[tuple[str, ...]] = ("on", "off")
READ_TOKEN_VARIABLE: Final[str] = "FAIRGATE_RECORD_READ_TOKEN"
DEFAULT_RECORD_URL: Final[str] = f"sqlite:///{DEFAULT_DATA_DIR}/{RECORD_FILE}"
DEFAULT_MAX_BODY_BYTES: Final[int] = 2 * 1024 * 1024
# The largest valid request (1,000 applications) is about 0.5 MB.
MIN_BODY_BYTES: Final[int] = 1024
MAX_WORKERS: Final[int] = 64
# BentoML's tag grammar: a name, optionally ":version" (``latest`` included).
_TAG: Final[re.Pattern[str]] = re.compile(
    r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)


class ConfigError(ValueError):
    """Every bad entry of one configuration, each on its own line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class ServiceConfig:
    model: str = DEFAULT_MODEL
    policy: PolicyMode = "mitigated"
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    gc: str = "tuned"
    draw_key: bytes | None = None
    artifact_key: bytes | None = None
    probe_token: str | None = None
    # None: FAIRGATE_RECORD=off, decisions are answered without a record.
    record_url: str | None = DEFAULT_RECORD_URL
    record_read_token: str | None = None

    def __repr__(self) -> str:  # the keys never reach a log line
        secret = {
            "draw_key": self.draw_key,
            "artifact_key": self.artifact_key,
            "probe_token": self.probe_token,
            "record_read_token": self.record_read_token,
        }
        shown = ", ".join(f"{k}={'<set>' if v else None}" for k, v in secret.items())
        return (
            f"ServiceConfig(model={self.model!r}, policy={self.policy!r}, "
            f"workers={self.workers}, max_body_bytes={self.max_body_bytes}, gc={self.gc!r}, "
            f"record_url={_without_password(self.record_url)!r}, {shown})"
        )


def _integer(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[0-9]+", text.strip()):
        problems.append(f"{name}={text!r}: expected a whole number from {low} to {high}")
        return default
    value = int(text)
    if not low <= value <= high:
        problems.append(f"{name}={value}: must be from {low} to {high}")
    return value


def _choice(
    env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...], problems: list[str]
) -> str:
    value = env.get(name) or default
    if value not in allowed:
        problems.append(f"{name}={value!r}: must be one of {', '.join(allowed)}")
    return value


def _key(env: Mapping[str, str], name: str, problems: list[str]) -> bytes | None:
    text = env.get(name)
    if not text:
        return None
    key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        problems.append(f"{name}: too short ({len(key)} bytes); use at least {MIN_KEY_BYTES}")
    return key


def artifact_key_from(env: Mapping[str, str]) -> bytes | None:
    """FAIRGATE_ARTIFACT_KEY alone (what ``fairgate train`` signs with); ``ConfigError`` if bad."""
    problems: list[str] = []
    key = _key(env, "FAIRGATE_ARTIFACT_KEY", problems)
    if problems:
        raise ConfigError(problems)
    return key


def _without_password(url: str | None) -> str | None:
    """A PostgreSQL URL may carry a password; it never reaches a log line."""
    if url is None:
        return None
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:<set>@", url)


def record_url_from(env: Mapping[str, str], problems: list[str]) -> str | None:
    """The record store's URL, or None when FAIRGATE_RECORD=off.

    Default: ``sqlite:///`` + FAIRGATE_DATA_DIR (``fairgate-data``) + ``/record.sqlite``.
    """
    switch = _choice(env, "FAIRGATE_RECORD", "on", RECORD_SWITCH, problems)
    url = env.get("FAIRGATE_RECORD_URL") or None
    if switch == "off":
        if url is not None:
            problems.append("FAIRGATE_RECORD=off but FAIRGATE_RECORD_URL is set: unset one of them")
        return None
    if url is None:
        data_dir = Path(env.get("FAIRGATE_DATA_DIR") or DEFAULT_DATA_DIR)
        url = f"sqlite:///{(data_dir / RECORD_FILE).as_posix()}"
    try:
        parse_record_url(url)
    except RecordUrlError as error:
        problems.append(str(error))
    return url


def absolute_record_url(url: str | None, cwd: Path) -> str | None:
    """``url`` with a relative SQLite path made absolute against ``cwd``.

    ``fairgate serve`` starts BentoML in the repository, not where the user stands, and a
    worker must not find its record somewhere else than the process that checked it.

    >>> absolute_record_url("sqlite:///fairgate-data/record.sqlite", Path("/srv"))
    'sqlite:////srv/fairgate-data/record.sqlite'
    """
    if url is None:
        return None
    parsed = parse_record_url(url)
    if parsed.backend != "sqlite" or parsed.path is None or parsed.path.is_absolute():
        return url
    return f"sqlite:///{(cwd / parsed.path).as_posix()}"


def service_config(env: Mapping[str, str]) -> ServiceConfig:
    """Build the configuration from ``env`` (the environment, plus any flags merged in).

    Raises ``ConfigError`` listing every bad entry, e.g. both a bad policy and a bad
    worker count, not just the first.
    """
    problems: list[str] = []
    model = env.get("FAIRGATE_MODEL") or DEFAULT_MODEL
    if not _TAG.fullmatch(model):
        problems.append(f"FAIRGATE_MODEL={model!r}: not a model tag (name or name:version)")
    policy = _choice(env, "FAIRGATE_POLICY", "mitigated", POLICY_MODES, problems)
    workers = _integer(env, "FAIRGATE_WORKERS", 1, 1, MAX_WORKERS, problems)
    max_body = _integer(
        env, "FAIRGATE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, MIN_BODY_BYTES, 2**31, problems
    )
    gc_mode = _choice(env, "FAIRGATE_GC", "tuned", GC_MODES, problems)
    draw_key = _key(env, "FAIRGATE_DRAW_KEY", problems)
    if policy == "randomized" and not env.get("FAIRGATE_DRAW_KEY"):
        problems.append(
            "FAIRGATE_DRAW_KEY: required with FAIRGATE_POLICY=randomized (a secret shared by "
            "every worker and replica, so a draw cannot be re-rolled or predicted)"
        )
    artifact_key = _key(env, "FAIRGATE_ARTIFACT_KEY", problems)
    probe_token = None
    try:
        probe_token = token_from_env(env)
    except ValueError as error:
        problems.append(str(error))
    record_url = record_url_from(env, problems)
    read_token = None
    try:
        read_token = token_from_env(env, READ_TOKEN_VARIABLE)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ConfigError(problems)
    return ServiceConfig(
        model=model,
        policy=cast(PolicyMode, policy),
        workers=workers,
        max_body_bytes=max_body,
        gc=gc_mode,
        draw_key=draw_key,
        artifact_key=artifact_key,
        probe_token=probe_token,
        record_url=record_url,
        record_read_token=read_token,
    )
