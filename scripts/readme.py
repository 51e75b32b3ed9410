"""Splice the generated sections of README.md from the committed outputs they quote.

Each section sits between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``
and is rebuilt from a file some command regenerates, so the README never carries a figure
or a response typed by hand:

- ``api-example``: docs/examples/api.md (``python scripts/api_example.py``);
- ``example-book``: the columns of examples/loan_book.csv (``python scripts/example_book.py``);
- ``bench-limits``: the figures of docs/benchmarks.md (``fairgate bench --update-doc``);
- ``tradeoff``: the part of docs/tradeoff.md under "## In the README" (the commands, the table
  per policy mode and the sentences quoting it; ``python scripts/tradeoff.py``).

``python scripts/readme.py`` rewrites README.md; ``--check`` exits 1 if it is out of date
(tests/test_docs.py runs that).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

# Run as ``python scripts/NAME.py``: this checkout's packages first, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.launch import REPO

README = REPO / "README.md"


def api_example() -> str:
    return (REPO / "docs" / "examples" / "api.md").read_text().rstrip("\n")


def example_book() -> str:
    header, *rows = (REPO / "examples" / "loan_book.csv").read_text().splitlines()
    columns = ", ".join(f"`{name}`" for name in header.split(","))
    return f"`examples/loan_book.csv` ({len(rows):,} synthetic rows) has the columns {columns}."


def _figure(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise SystemExit(f"docs/benchmarks.md: no match for {pattern!r}")
    return found.group(1)


def bench_limits() -> str:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    off = float(_figure(r"record off = \*\*([\d.]+) x\*\* the validating floor", text))
    on = float(_figure(r"SQLite record on: \*\*([\d.]+) x\*\* the same service", text))
    batch = _figure(r"/decide_batch of 100, record on: \*\*([\d,]+) decisions/s", text)
    client = float(_figure(r"rate \([\d,]+ req/s, record on\): \*\*(\d+) ms\*\* as Locust", text))
    server = float(_figure(r"p99 \*\*([\d.]+) ms\*\* \((?:met|\*\*missed\*\*) server-side", text))

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    return (
        f"- `/decide` with the record off serves {off:.2f} x the validating floor's throughput "
        f"(BentoML validating the same body and answering a constant; target >= 0.9: "
        f"{verdict(off >= 0.9)}); with the SQLite record on, as shipped, {on:.2f} x the same "
        f"service with it off (target >= 0.8: {verdict(on >= 0.8)}); `/decide_batch` of 100 "
        f"with the record on: {batch} decisions/s (target >= 20,000: "
        f"{verdict(int(batch.replace(',', '')) >= 20_000)}). At 70% of its saturating rate the "
        f"p99 of `/decide` is {client:.0f} ms as Locust measures it and {server:.1f} ms inside "
        f"the server: with Locust and the server sharing 2 cores the 20 ms target is "
        f"{verdict(client <= 20)} client-side and {verdict(server <= 20)} server-side "
        f"(`docs/benchmarks.md`)."
    )


def tradeoff() -> str:
    text = (REPO / "docs" / "tradeoff.md").read_text()
    found = re.search(r"^## In the README\n\n(.*?)\n+^## ", text, re.S | re.M)
    if found is None:
        raise SystemExit("docs/tradeoff.md: no '## In the README' section")
    return found.group(1)


SECTIONS: dict[str, Callable[[], str]] = {
    "api-example": api_example,
    "example-book": example_book,
    "bench-limits": bench_limits,
    "tradeoff": tradeoff,
}


def spliced(text: str) -> str:
    for name, build in SECTIONS.items():
        start, end = f"<!-- generated: {name} -->", f"<!-- end generated: {name} -->"
        if text.count(start) != 1 or text.count(end) != 1:
            raise SystemExit(f"README.md: expected one {start} ... {end}")
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = f"{before}{start}\n{build()}\n{end}{after}"
    return text


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = spliced(current)
    if "--check" in argv:
        if wanted != current:
            print("README.md is out of date: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
