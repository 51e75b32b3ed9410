"""``FAIRGATE_RECORD_URL``: which store, parsed by a pure function that names what is wrong.

``record_url`` is the one answer to "where is the decision record?" for the service
(``service/config.py``) and every command that reads it (``fairgate record``, ``fairgate
audit``): the URL if set, else ``sqlite:///$FAIRGATE_DATA_DIR/record.sqlite``, a relative
SQLite path taken from the directory the command was started in. So ``fairgate record
verify`` finds what ``fairgate serve``, started in the same directory, wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

ENV_VAR: Final[str] = "FAIRGATE_RECORD_URL"
DATA_DIR_VAR: Final[str] = "FAIRGATE_DATA_DIR"
DEFAULT_DATA_DIR: Final[str] = "fairgate-data"
RECORD_FILE: Final[str] = "record.sqlite"
EXAMPLES = "sqlite:////var/lib/fairgate/record.sqlite or postgresql://user@host:5432/dbname"


class RecordUrlError(ValueError):
    """The record URL is missing or malformed; the message says what to write instead."""


@dataclass(frozen=True)
class RecordUrl:
    backend: Literal["sqlite", "postgresql"]
    path: Path | None  # SQLite: the database file
    dsn: str | None  # PostgreSQL: the URL as libpq takes it


def parse_record_url(text: str | None) -> RecordUrl:
    """Parse a record URL.

    >>> parse_record_url("sqlite:////var/lib/fairgate/record.sqlite").path.as_posix()
    '/var/lib/fairgate/record.sqlite'

    As in SQLAlchemy, three slashes then a relative path, four for an absolute one.
    """
    if not text or not text.strip():
        raise RecordUrlError(f"{ENV_VAR} is not set (e.g. {EXAMPLES})")
    text = text.strip()
    scheme = text.partition(":")[0].lower()
    if scheme == "sqlite":
        if not text.startswith("sqlite:///"):
            raise RecordUrlError(
                f"{ENV_VAR}={text!r}: a SQLite URL is sqlite:/// and then the file's path "
                "(sqlite:////abs/path.sqlite or sqlite:///relative/path.sqlite)"
            )
        raw = text.removeprefix("sqlite:///")
        if not raw or raw.endswith("/") or "?" in raw:
            raise RecordUrlError(
                f"{ENV_VAR}={text!r}: expected a database file after sqlite:/// (no query string)"
            )
        return RecordUrl("sqlite", Path(raw), None)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(text)
        if not parts.path.strip("/"):
            raise RecordUrlError(f"{ENV_VAR}={text!r}: the PostgreSQL URL names no database")
        return RecordUrl("postgresql", None, text)
    raise RecordUrlError(
        f"{ENV_VAR}={text!r}: unknown store {scheme!r}; expected sqlite:/// or postgresql:// "
        f"(e.g. {EXAMPLES})"
    )


def default_record_url(env: Mapping[str, str]) -> str:
    """The record's URL when FAIRGATE_RECORD_URL is unset, relative unless the data dir is not.

    >>> default_record_url({})
    'sqlite:///fairgate-data/record.sqlite'
    """
    data_dir = Path(env.get(DATA_DIR_VAR) or DEFAULT_DATA_DIR)
    return f"sqlite:///{(data_dir / RECORD_FILE).as_posix()}"


def pinned_record_url(url: str, cwd: Path) -> str:
    """``url`` with a relative SQLite path taken from ``cwd``; any other URL as it is.

    ``fairgate serve`` starts BentoML in the repository, not where the user stands, and a
    worker must not find its record somewhere else than the process that checked it.

    >>> pinned_record_url("sqlite:///fairgate-data/record.sqlite", Path("/srv"))
    'sqlite:////srv/fairgate-data/record.sqlite'
    """
    parsed = parse_record_url(url)
    if parsed.backend != "sqlite" or parsed.path is None or parsed.path.is_absolute():
        return url
    return f"sqlite:///{(cwd / parsed.path).as_posix()}"


def record_url(env: Mapping[str, str], cwd: Path) -> str:
    """Where the decision record is: FAIRGATE_RECORD_URL, else the default in
    FAIRGATE_DATA_DIR (``fairgate-data``), a relative SQLite path taken from ``cwd``.

    >>> record_url({}, Path("/srv"))
    'sqlite:////srv/fairgate-data/record.sqlite'
    >>> record_url({"FAIRGATE_RECORD_URL": "postgresql://db/fairgate"}, Path("/srv"))
    'postgresql://db/fairgate'

    Raises ``RecordUrlError`` for a malformed URL.
    """
    url = (env.get(ENV_VAR) or "").strip() or default_record_url(env)
    return pinned_record_url(url, cwd)


def without_password(url: str) -> str:
    """A PostgreSQL URL may carry a password; it never reaches a log line.

    >>> without_password("postgresql://app:s3cret@db:5432/fairgate")
    'postgresql://app:<set>@db:5432/fairgate'
    """
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:<set>@", url)
