"""Prober configuration: a typed object built by a pure function from a mapping.

Sources, later winning: a TOML file (``--config.file``), ``FAIRGATE_PROBE_*`` environment
variables, command-line flags. Every bad entry is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from fairgate.config_error import ConfigError
from fairgate.probe_auth import token_from_env

ENV_PREFIX: Final[str] = "FAIRGATE_PROBE_"


@dataclass(frozen=True)
class ProberConfig:
    target: str = "http://127.0.0.1:3000"
    interval_seconds: float = 30.0
    pairs: int = 1000
    gap_sample: int = 100
    control_pairs: int = 200  # capped at ``pairs``: the first twins' applicants, sent twice
    # Empty: the contract's groups.prober (checked against the contract each cycle).
    attributes: tuple[str, ...] = ()
    seed: int = 0
    boundary_share: float = 0.5
    # A contract file for an endpoint that is not fairgate (no GET /policy to read).
    contract: Path | None = None
    # The service's FAIRGATE_PROBE_TOKEN (FAIRGATE_PROBE_TOKEN or FAIRGATE_PROBE_TOKEN_FILE):
    # a fairgate service refuses probe claims without it.
    token: str | None = field(default=None, repr=False)
    listen_address: str = "127.0.0.1:9109"
    timeout_seconds: float = 10.0

    @property
    def listen(self) -> tuple[str, int]:
        host, _, port = self.listen_address.rpartition(":")
        return host or "0.0.0.0", int(port)


def _number(value: Any, kind: type, minimum: float) -> Any:
    parsed = kind(value)
    if parsed < minimum:
        raise ValueError(f"must be >= {minimum}")
    return parsed


def config_from_mapping(raw: Mapping[str, Any]) -> ProberConfig:
    known = {f.name for f in fields(ProberConfig)} | {"token_file"}
    errors = [f"{key}: unknown setting" for key in raw if key not in known]
    values: dict[str, Any] = {}
    checks = {
        "interval_seconds": lambda v: _number(v, float, 0.0),
        "pairs": lambda v: _number(v, int, 1),
        "gap_sample": lambda v: _number(v, int, 0),
        "control_pairs": lambda v: _number(v, int, 1),
        "seed": lambda v: _number(v, int, 0),
        "timeout_seconds": lambda v: _number(v, float, 0.001),
        "target": lambda v: _url(str(v)),
        "listen_address": lambda v: _address(str(v)),
        "attributes": _attributes,
        "boundary_share": _share,
        "contract": _contract,
    }
    for key, check in checks.items():
        if key in raw:
            try:
                values[key] = check(raw[key])
            except (TypeError, ValueError) as error:
                errors.append(f"{key}: {error} (got {raw[key]!r})")
    try:
        values["token"] = token_from_env(
            {
                "FAIRGATE_PROBE_TOKEN": str(raw.get("token") or ""),
                "FAIRGATE_PROBE_TOKEN_FILE": str(raw.get("token_file") or ""),
            }
        )
    except ValueError as error:
        errors.append(f"token: {error}")
    if errors:
        raise ConfigError(errors, "prober configuration")
    return ProberConfig(**values)


def env_mapping(environ: Mapping[str, str]) -> dict[str, str]:
    return {k[len(ENV_PREFIX) :].lower(): v for k, v in environ.items() if k.startswith(ENV_PREFIX)}


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL")
    return value.rstrip("/")


def _address(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT")
    return value


def _attributes(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(item.strip() for item in items if item.strip())
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(f"expected protected-attribute names of the contract, got {bad}")
    return names


def _share(value: Any) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError("must be between 0 and 1")
    return share


def _contract(value: Any) -> Path:
    from fairgate.contract import ContractError, load_contract

    path = Path(str(value))
    if not path.is_file():
        raise ValueError("no such file")
    try:
        load_contract(path)
    except ContractError as error:
        raise ValueError(str(error)) from error
    return path
