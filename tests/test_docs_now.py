"""README.md and docs/*.md describe the product as it is now, with the command that measures
each figure; how it got there belongs in git log.

The check fails on history talk: numbered work periods ("session 6"), issue numbers used as
dates ("before issue 11"), earlier or previous runs kept beside the current one, clock times
of runs, commit ids. Generated sections (``<!-- generated: NAME -->`` ... and ``fairgate
bench``'s own) are left out: their text comes from the script that writes them, and a fix
belongs there.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

# (what it is, pattern); matched case-insensitively, line by line.
HISTORY: tuple[tuple[str, str], ...] = (
    ("a numbered work session", r"\bsessions?[ -]\d"),
    ("a work period", r"\bwork periods?\b"),
    ("a last or previous session", r"\b(?:last|previous|this|that|next) session\b"),
    ("an issue as a date", r"\bbefore issue\b"),
    ("an issue number", r"\bissues? \d+\b"),
    ("an earlier run", r"\bearlier runs?\b"),
    ("a previous run", r"\bprevious runs?\b"),
    ("a run's clock time", r"\b\d{1,2}:\d{2}(?:\s*-\s*\d{1,2}:\d{2})? UTC\b"),
    ("a measurement against stashed code", r"\bgit stash\b"),
    ("a commit id after 'main at' or 'commit'", r"\b(?:main|master|head) at `?[0-9a-f]{7,40}\b"),
    ("a commit id after 'commit'", r"\bcommit `?[0-9a-f]{7,40}\b"),
)
# A commit id standing alone (in backticks, parentheses or running text): 7-40 hex digits with
# at least one digit and one letter, not part of a longer name (`p-38d2bdeadee4` is a policy
# version, `0.8164808822698248` a score).
COMMIT_ID = re.compile(
    r"(?<![\w\-:./])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w\-:./])"
)
GENERATED = re.compile(
    r"^<!-- generated: (?P<name>[\w-]+) -->$.*?^<!-- end generated: (?P=name) -->$"
    r"|^<!-- fairgate bench: start -->$.*?^<!-- fairgate bench: end -->$",
    re.S | re.M,
)
PATTERNS = [(what, re.compile(pattern, re.I)) for what, pattern in HISTORY]


def documents() -> list[str]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [path.relative_to(REPO).as_posix() for path in paths]


def hand_written(text: str) -> str:
    """``text`` with every generated section blanked, line numbers kept."""
    return GENERATED.sub(lambda found: "\n" * found.group(0).count("\n"), text)


def history(name: str, text: str) -> list[str]:
    """Each line of history talk in ``text`` as ``name:line: text (what)``."""
    hits = []
    for number, line in enumerate(hand_written(text).splitlines(), start=1):
        found = [what for what, pattern in PATTERNS if pattern.search(line)]
        if COMMIT_ID.search(line):
            found.append("a commit id")
        hits += [f"{name}:{number}: {line.strip()[:100]} ({what})" for what in found]
    return hits


@pytest.mark.parametrize("name", documents())
def test_the_docs_describe_the_product_not_its_history(name):
    hits = history(name, (REPO / name).read_text())
    assert not hits, "history talk (git log keeps it; say what holds now):\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "sentence",
    [
        "Before issue 11 (main at 2cf853c, draws keyed on blake2b):",
        "the previous session's run gave 0.80 x",
        "session 8's bench run",
        "Since session 7 it looks exit leaves up in a table",
        "each next to the session-6 code in the same minutes (`git stash`)",
        "in two sessions 5 and 6",
        "Until the last session the figure was 20-31 ms",
        "in this work period",
        "## Profiling the HTTP path (issues 13 and 14)",
        "reads 0.98 (earlier run: 0.83)",
        "a previous run gave 30,583 /s",
        "the third at 12:59-13:05 UTC",
        "one run, 13:10 UTC",
        "Before (e5b33e6, the tool copied into that tree) and after",
        "measured at `e5b33e6`",
        "as of commit 78f9b0d4c1",
    ],
)
def test_each_kind_of_history_talk_is_caught(sentence):
    assert history("doc.md", sentence), sentence


@pytest.mark.parametrize(
    "sentence",
    [
        '"policy_version": "p-38d2bdeadee4",',
        '"score": 0.8164808822698248,',
        "(default 2097152, at least 1024); 413 above it",
        "`fairgate bench --duration 20 --users 20 --rounds 6`",
        "the test session's PostgreSQL server",
        "text `2026-01-31T12:00:00.000000Z`",
        "one commit and one fsync serve many concurrent requests",
        "the previous hash is 64 zeros",
    ],
)
def test_the_product_as_it_is_passes(sentence):
    assert not history("doc.md", sentence), sentence


def test_generated_sections_are_left_to_their_scripts():
    bench = "<!-- fairgate bench: start -->\nissue 13's target\n<!-- fairgate bench: end -->"
    spliced = "<!-- generated: x -->\nsession 6\n<!-- end generated: x -->"
    text = f"intro\n{bench}\n{spliced}\nsession 7\n"
    assert history("doc.md", text) == ["doc.md:8: session 7 (a numbered work session)"]
