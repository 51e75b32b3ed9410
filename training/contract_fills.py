"""The model's copy of a contract: the person's text with the fills learnt at training.

A field that says ``missing = "median"`` (or ``"most_frequent"``) gets ``fill = <value>``
beside it, learnt from the training rows (``fairgate.contract_missing.learn_fills``). The
text is edited, not regenerated (tomlkit keeps the person's comments and layout), so what is
stored with the model, served on ``GET /policy`` and reviewed is the file they wrote plus
the values training chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.items import InlineTable, Table


def with_learnt_fills(text: str, fills: Mapping[str, Any], rows: int) -> str:
    """``text`` with ``fill`` set on each field named in ``fills``."""
    if not fills:
        return text
    document = tomlkit.parse(text)
    for table in document.get("fields", []):
        name = table.get("name")
        if name not in fills:
            continue
        table["fill"] = fills[name]
        if isinstance(table, Table) and not isinstance(table, InlineTable):
            table["fill"].comment(f"learnt at training: the {table['missing']} of {rows:,} rows")
    return tomlkit.dumps(document)
