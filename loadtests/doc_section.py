"""Rewrite one generated section of a Markdown document, keeping everything else.

``fairgate bench --update-doc``, ``python -m loadtests.bench_policy --update-doc`` and
``python -m loadtests.drift_loop --update-doc`` each own a section between two HTML-comment
markers; a document without them gets the section appended.
"""

from __future__ import annotations

from pathlib import Path


def splice(doc: Path, block: str, start: str, end: str, title: str) -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) in place of the
    ``start``...``end`` section of ``doc``; ``title``: the first line of a new document.

    >>> import tempfile
    >>> doc = Path(tempfile.mkdtemp()) / "d.md"
    >>> splice(doc, "<!-- a -->\\nnew\\n<!-- /a -->", "<!-- a -->", "<!-- /a -->", "# D")
    >>> doc.read_text()
    '# D\\n\\n<!-- a -->\\nnew\\n<!-- /a -->\\n'
    """
    text = doc.read_text() if doc.exists() else f"{title}\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)
