"""Prober configuration: a typed object built by a pure function from a mapping.

Sources, later winning: a TOML file (``--config.file``), ``FAIRGATE_PROBE_*`` environment
variables, command-line flags. Every bad entry is reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from monitoring.counterfactual import ATTRIBUTE_VALUES

ENV_PREFIX: Final[str] = "FAIRGATE_PROBE_"


class ConfigError(ValueError):
    """One or more configuration entries are invalid; the message lists them all."""


@dataclass(frozen=True)
class ProberConfig:
    target: str = "http://127.0.0.1:3000"
    interval_seconds: float = 30.0
    pairs: int = 1000
    gap_sample: int = 100
    control_pairs: int = 200  # capped at ``pairs``: the first twins' applicants, sent twice
    attributes: tuple[str, ...] = ("gender", "age_band")
    seed: int = 0
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
    known = {f.name for f in fields(ProberConfig)}
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
    }
    for key, check in checks.items():
        if key in raw:
            try:
                values[key] = check(raw[key])
            except (TypeError, ValueError) as error:
                errors.append(f"{key}: {error} (got {raw[key]!r})")
    if errors:
        raise ConfigError("invalid prober configuration:\n  " + "\n  ".join(errors))
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
    unknown = [n for n in names if n not in ATTRIBUTE_VALUES]
    if unknown or not names:
        raise ValueError(f"expected some of {tuple(ATTRIBUTE_VALUES)}")
    return names
