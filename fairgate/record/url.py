"""``FAIRGATE_RECORD_URL``: which store, parsed by a pure function that names what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

ENV_VAR = "FAIRGATE_RECORD_URL"
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
                f"{ENV_VAR}={text!r}: expected a database file after sqlite:/// "
                "(no query string)"
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
