"""The service's configuration: one frozen object built by a pure function from a mapping.

The one configuration path: ``service_config`` takes the environment and, from ``fairgate
serve``, the flags the user gave. A flag given wins over its variable and a flag not given
changes nothing, so ``FAIRGATE_POLICY=unmitigated fairgate serve``, the same variable under
a plain ``bentoml serve`` and in docker-compose all serve ``unmitigated``; every default is
here. ``fairgate serve`` checks the configuration, then starts BentoML with the resolved
settings exported (``exported_settings``), and the server's ``on_deployment`` hook (once,
before any worker starts: a bad entry stops ``bentoml serve`` with every problem listed) and
each worker build the same object again from that environment. Nothing reads the
environment at import time.

| variable | default | meaning |
|---|---|---|
| FAIRGATE_MODEL | fairgate-loan:latest | model tag; resolved once per deployment |
| FAIRGATE_POLICY | lda | lda / mitigated / randomized / unmitigated (``fairgate.policy``) |
| FAIRGATE_WORKERS | 1 | BentoML API workers (passed to BentoML by ``service.launch``) |
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
| FAIRGATE_POLICY_POLL | 1 | seconds between a worker's looks at the policy store; 0: never |
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from fairgate.artifacts import DEFAULT_MODEL
from fairgate.config_error import ConfigError
from fairgate.draw import MIN_KEY_BYTES
from fairgate.policy import DEFAULT_POLICY_MODE, POLICY_MODES, PolicyMode
from fairgate.probe_auth import token_from_env
from record.url import (
    RecordUrlError,
    default_record_url,
    pinned_record_url,
    record_url,
    without_password,
)
from service.gc_tuning import GC_MODES

# The less discriminatory alternative: one attribute-blind model, one cut-off for everyone.
DEFAULT_POLICY: Final[PolicyMode] = DEFAULT_POLICY_MODE
DEFAULT_WORKERS: Final[int] = 1
RECORD_SWITCH: Final[tuple[str, ...]] = ("on", "off")
READ_TOKEN_VARIABLE: Final[str] = "FAIRGATE_RECORD_READ_TOKEN"
DEFAULT_RECORD_URL: Final[str] = default_record_url({})
DEFAULT_MAX_BODY_BYTES: Final[int] = 2 * 1024 * 1024
# The largest valid request (1,000 applications) is about 0.5 MB.
MIN_BODY_BYTES: Final[int] = 1024
MAX_WORKERS: Final[int] = 64
# A promoted policy version reaches every worker within one poll (the issue asks 5 s).
DEFAULT_POLICY_POLL: Final[float] = 1.0
MAX_POLICY_POLL: Final[float] = 60.0
# BentoML's tag grammar: a name, optionally ":version" (``latest`` included).
_TAG: Final[re.Pattern[str]] = re.compile(
    r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)
# Problems, each starting with the setting as the user gave it: ``FAIRGATE_POLICY='x'`` for a
# variable, ``--policy 'x'`` for a flag (``Settings.shown``).
NOT_A_NUMBER: Final[str] = "{setting}: expected a whole number from {low} to {high}"
NOT_SECONDS: Final[str] = "{setting}: expected seconds, a number from {low:g} to {high:g}"
OUT_OF_RANGE: Final[str] = "{setting}: must be from {low} to {high}"
NOT_ONE_OF: Final[str] = "{setting}: must be one of {allowed}"
NOT_A_TAG: Final[str] = "{setting}: not a model tag (name or name:version)"
DRAW_KEY_REQUIRED: Final[str] = (
    "FAIRGATE_DRAW_KEY: required with {setting} (a secret shared by every worker and "
    "replica, so a draw cannot be re-rolled or predicted)"
)
# The serve log's first line (BentoML's ``on_deployment`` hook): what is served, and where
# its decisions are recorded.
STARTUP_LINE: Final[str] = (
    "fairgate: serving {tag} (contract {contract} v{version}), policy {policy}, record {record}"
)
RECORD_OFF_WITH_URL: Final[str] = (
    "FAIRGATE_RECORD=off but FAIRGATE_RECORD_URL is set: unset one of them"
)


@dataclass(frozen=True)
class Flag:
    """A setting given on the command line: it wins over its variable, and a problem with it
    is reported under the flag, as the user wrote it.

    >>> Flag("FAIRGATE_POLICY", "--policy", "unmitigated").variable
    'FAIRGATE_POLICY'
    """

    variable: str
    name: str
    value: str


class Settings(Mapping[str, str]):
    """The environment with the flags given laid over it, remembering which is which."""

    def __init__(self, env: Mapping[str, str], flags: Sequence[Flag] = ()) -> None:
        self._values = dict(env) | {flag.variable: flag.value for flag in flags}
        self._flags = {flag.variable: flag.name for flag in flags}

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def shown(self, name: str, value: object) -> str:
        """``FAIRGATE_POLICY='x'``, or ``--policy 'x'`` when a flag gave it."""
        flag = self._flags.get(name)
        return f"{name}={value!r}" if flag is None else f"{flag} {value!r}"


@dataclass(frozen=True)
class ServiceConfig:
    model: str = DEFAULT_MODEL
    policy: PolicyMode = DEFAULT_POLICY
    workers: int = DEFAULT_WORKERS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    gc: str = "tuned"
    draw_key: bytes | None = None
    artifact_key: bytes | None = None
    probe_token: str | None = None
    # None: FAIRGATE_RECORD=off, decisions are answered without a record.
    record_url: str | None = DEFAULT_RECORD_URL
    record_read_token: str | None = None
    # Seconds between a worker's looks at the policy store (0: the trained policy, always).
    policy_poll: float = DEFAULT_POLICY_POLL

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
            f"record_url={self.record_store!r}, {shown})"
        )

    @property
    def record_store(self) -> str:
        """The record's URL as a log line may show it (no password), or ``off``."""
        return "off" if self.record_url is None else without_password(self.record_url)


def startup_line(
    config: ServiceConfig, tag: str, contract: str, version: int, record_url: str | None
) -> str:
    """The serve log's first line; ``record_url`` as pinned for the workers, never a password.

    >>> startup_line(ServiceConfig(), "fairgate-loan:abc", "synthetic", 1, None)
    'fairgate: serving fairgate-loan:abc (contract synthetic v1), policy lda, record off'
    """
    record = "off" if record_url is None else without_password(record_url)
    return STARTUP_LINE.format(
        tag=tag, contract=contract, version=version, policy=config.policy, record=record
    )


def exported_settings(config: ServiceConfig) -> dict[str, str]:
    """The variables a server started from ``config`` needs so that its own
    ``service_config(os.environ)`` builds the same object: the settings a flag can give, and
    the record's URL as resolved here (where the user stands, not where BentoML runs)."""
    settings = {
        "FAIRGATE_MODEL": config.model,
        "FAIRGATE_POLICY": config.policy,
        "FAIRGATE_WORKERS": str(config.workers),
    }
    if config.record_url is not None:
        settings["FAIRGATE_RECORD_URL"] = config.record_url
    return settings


def _integer(
    env: Settings, name: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[0-9]+", text.strip()):
        problems.append(NOT_A_NUMBER.format(setting=env.shown(name, text), low=low, high=high))
        return default
    value = int(text)
    if not low <= value <= high:
        problems.append(OUT_OF_RANGE.format(setting=env.shown(name, value), low=low, high=high))
    return value


def _seconds(env: Settings, name: str, default: float, high: float, problems: list[str]) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:  # NaN fails this too
        problems.append(NOT_SECONDS.format(setting=env.shown(name, text), low=0, high=high))
        return default
    return value


def _choice(
    env: Settings, name: str, default: str, allowed: tuple[str, ...], problems: list[str]
) -> str:
    value = env.get(name) or default
    if value not in allowed:
        problems.append(
            NOT_ONE_OF.format(setting=env.shown(name, value), allowed=", ".join(allowed))
        )
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


def record_url_from(
    env: Mapping[str, str], problems: list[str], cwd: Path = Path(".")
) -> str | None:
    """The record store's URL (``record.url.record_url``), or None when
    FAIRGATE_RECORD=off."""
    settings = env if isinstance(env, Settings) else Settings(env)
    switch = _choice(settings, "FAIRGATE_RECORD", "on", RECORD_SWITCH, problems)
    if switch == "off":
        if env.get("FAIRGATE_RECORD_URL"):
            problems.append(RECORD_OFF_WITH_URL)
        return None
    try:
        return record_url(env, cwd)
    except RecordUrlError as error:
        problems.append(str(error))
        return env.get("FAIRGATE_RECORD_URL")


def absolute_record_url(url: str | None, cwd: Path) -> str | None:
    """``url`` with a relative SQLite path made absolute against ``cwd``
    (``record.url.pinned_record_url``); None stays None.

    >>> absolute_record_url("sqlite:///fairgate-data/record.sqlite", Path("/srv"))
    'sqlite:////srv/fairgate-data/record.sqlite'
    """
    return None if url is None else pinned_record_url(url, cwd)


def service_config(
    env: Mapping[str, str], *, flags: Sequence[Flag] = (), cwd: Path = Path(".")
) -> ServiceConfig:
    """Build the configuration from ``env`` (the environment) and the ``flags`` given.

    A relative SQLite record path is taken from ``cwd`` (left relative by default). Raises
    ``ConfigError`` listing every bad entry, e.g. both a bad policy and a bad worker count,
    not just the first; a flag's problem names the flag.

    >>> service_config({"FAIRGATE_POLICY": "unmitigated"}).policy
    'unmitigated'
    >>> service_config({"FAIRGATE_POLICY": "unmitigated"},
    ...                flags=[Flag("FAIRGATE_POLICY", "--policy", "mitigated")]).policy
    'mitigated'
    """
    settings = Settings(env, flags)
    problems: list[str] = []
    model = settings.get("FAIRGATE_MODEL") or DEFAULT_MODEL
    if not _TAG.fullmatch(model):
        problems.append(NOT_A_TAG.format(setting=settings.shown("FAIRGATE_MODEL", model)))
    policy = _choice(settings, "FAIRGATE_POLICY", DEFAULT_POLICY, POLICY_MODES, problems)
    workers = _integer(settings, "FAIRGATE_WORKERS", DEFAULT_WORKERS, 1, MAX_WORKERS, problems)
    max_body = _integer(
        settings, "FAIRGATE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, MIN_BODY_BYTES, 2**31,
        problems,
    )  # fmt: skip
    gc_mode = _choice(settings, "FAIRGATE_GC", "tuned", GC_MODES, problems)
    draw_key = _key(settings, "FAIRGATE_DRAW_KEY", problems)
    if policy == "randomized" and not settings.get("FAIRGATE_DRAW_KEY"):
        problems.append(DRAW_KEY_REQUIRED.format(setting=settings.shown("FAIRGATE_POLICY", policy)))
    artifact_key = _key(settings, "FAIRGATE_ARTIFACT_KEY", problems)
    probe_token = None
    try:
        probe_token = token_from_env(settings)
    except ValueError as error:
        problems.append(str(error))
    record = record_url_from(settings, problems, cwd)
    read_token = None
    try:
        read_token = token_from_env(settings, READ_TOKEN_VARIABLE)
    except ValueError as error:
        problems.append(str(error))
    poll = _seconds(settings, "FAIRGATE_POLICY_POLL", DEFAULT_POLICY_POLL, MAX_POLICY_POLL,
                    problems)  # fmt: skip
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
        record_url=record,
        record_read_token=read_token,
        policy_poll=poll,
    )
