"""The model a service process serves and its contract, looked up once, at import.

BentoML needs two things from the model when the service class is declared, before any
worker state exists: the model itself (``bento_model``, so that ``bentoml build`` packs it
into the Bento and ``bentoml serve`` resolves it before start-up) and the request type, which
is derived from the model's contract (``fairgate.contract_request.request_model``). Both come
from ``served_model``: one lookup of ``FAIRGATE_MODEL`` (default ``fairgate-loan:latest``) in
the model store, or, when the code runs from a Bento, of the model that Bento was built with.

``on_deployment`` then pins ``FAIRGATE_MODEL`` to that concrete tag, so each worker,
importing the service after it, reads the contract of exactly the model it then loads (with
every checksum verified, ``fairgate.artifacts.load_serving_bundle``).

Nothing falls back to the built-in contract: a request type built from another contract than
the served model's would accept the wrong applications. A model that cannot be read stops
the import with the reason, as a BentoML error, so ``bentoml serve`` and ``bentoml build``
print it as their one-line failure (BentoML would otherwise resolve the declared model first
and report only that it is not in BentoCloud either).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import bentoml
from bentoml.exceptions import BentoMLException

from fairgate.artifacts import CONTRACT_FILE, ModelNotFound, resolve_tag
from fairgate.contract import Contract, ContractError, parse_contract
from service.config import DEFAULT_MODEL, NOT_A_TAG

# A Bento's layout (BentoML's ``BENTO_PROJECT_DIR_NAME`` and ``BENTO_YAML_FILENAME``): the
# project's files under ``src/``, beside the ``bento.yaml`` that lists the Bento's models.
BENTO_SOURCE_DIR: Final[str] = "src"
BENTO_FILE: Final[str] = "bento.yaml"
UNREADABLE_CONTRACT: Final[str] = "{tag}: cannot read its contract ({file}): {error}"
BENTO_WITHOUT_MODEL: Final[str] = (
    "the Bento {bento} carries no model for its service {service!r}; rebuild it with "
    "`bentoml build` from a checkout whose model store has the model"
)
NOT_THE_BENTO_S_MODEL: Final[str] = (
    "FAIRGATE_MODEL={requested!r}, but this Bento serves {packed}, the model it was built "
    "with: unset FAIRGATE_MODEL, or build a Bento with FAIRGATE_MODEL={requested}"
)


class ServedModelError(BentoMLException):
    """The model to serve cannot be read when the service is imported.

    A ``BentoMLException`` because BentoML's CLI prints one of those as a one-line error
    (``Error: [serve] `serve` failed: no model ...``); any other exception is a traceback.
    """


@dataclass(frozen=True)
class ServedModel:
    """The concrete ``name:version`` served, and the contract stored with it."""

    tag: str
    contract: Contract


def bento_model_tag(source_root: Path) -> str | None:
    """The model of the Bento whose source tree is ``source_root`` (``<bento>/src``), or
    None when the code runs from a checkout or an installed package.

    Serving a Bento, the model is the one ``bentoml build`` packed, whatever the model
    store's ``latest`` became since: the Bento is the unit that was reviewed and shipped.
    """
    bento_dir = source_root.parent
    if source_root.name != BENTO_SOURCE_DIR or not (bento_dir / BENTO_FILE).is_file():
        return None
    bento = bentoml.Bento.from_path(str(bento_dir))
    info = bento.info
    models = [m for s in info.services if s.name == info.entry_service for m in s.models]
    if not models:
        raise ServedModelError(
            BENTO_WITHOUT_MODEL.format(bento=bento.tag, service=info.entry_service)
        )
    return str(models[0].tag)


def names_model(requested: str, concrete: str) -> bool:
    """Whether the tag ``requested`` (``name``, ``name:latest`` or ``name:version``) can
    mean the concrete ``name:version``.

    >>> names_model("fairgate-loan:latest", "fairgate-loan:abc"), names_model("x:1", "x:2")
    (True, False)
    """
    name, _, version = requested.partition(":")
    concrete_name, _, concrete_version = concrete.partition(":")
    return name == concrete_name and version in ("", "latest", concrete_version)


def served_model(env: Mapping[str, str], packed: str | None = None) -> ServedModel:
    """The model ``FAIRGATE_MODEL`` names in ``env`` (default ``fairgate-loan:latest``),
    resolved to its concrete tag, with its contract; ``packed``: the Bento's model
    (``bento_model_tag``), served instead, and FAIRGATE_MODEL may only name that one.

    Raises ``ServedModelError`` naming what failed: no such model (the store's location and
    ``fairgate train`` in the message), a malformed tag, a Bento built with another model,
    or a contract that cannot be read.
    """
    requested = env.get("FAIRGATE_MODEL") or DEFAULT_MODEL
    if packed is not None:
        if env.get("FAIRGATE_MODEL") and not names_model(requested, packed):
            raise ServedModelError(NOT_THE_BENTO_S_MODEL.format(requested=requested, packed=packed))
        requested = packed
    try:
        tag = resolve_tag(requested)
    except ModelNotFound as error:
        raise ServedModelError(str(error)) from error
    except (ValueError, BentoMLException) as error:  # BentoML's tag parser refused it
        setting = f"FAIRGATE_MODEL={requested!r}"
        raise ServedModelError(f"{NOT_A_TAG.format(setting=setting)}: {error}") from error
    path = Path(bentoml.models.get(tag).path) / CONTRACT_FILE
    try:
        contract = parse_contract(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ContractError) as error:
        raise ServedModelError(
            UNREADABLE_CONTRACT.format(tag=tag, file=CONTRACT_FILE, error=error)
        ) from error
    return ServedModel(tag=tag, contract=contract)
