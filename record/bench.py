"""Records per second into each store, through the group-commit writer (not a timed test).

    python -m record.bench [--postgres URL] [--seconds 3] [--concurrency 32]

For each backend and batch size (1: ``/decide``; 1000: a full ``/decide_batch``),
``--concurrency`` asyncio tasks await ``writer.append`` in a loop, as concurrent requests of
one service worker do, through the writer the service uses (SQLite: the writer process;
PostgreSQL: the writer thread). Then, without the writer, one transaction of 1,000 rows per insert
method (the comparison behind the backend choices in docs/record.md), and the cost of
building a chained row (JSON and SHA-256) alone. ``python -m loadtests.postgres`` runs it with a
throwaway PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fairgate.contract import builtin_contract
from record.entry import Record, StoredRecord, chain
from record.process_writer import ProcessWriter
from record.store import RecordStore, open_record
from record.writer import RecordWriter

RAW_ROWS = 10_000
INSERT_METHOD = {"sqlite": "executemany", "postgresql": "COPY"}


def sample_records(count: int, seed: int = 0, base: Record | None = None) -> list[Record]:
    """``count`` records of the synthetic book's example applicant with distinct ids, in
    random order as real ones arrive (the application-id index pays for that order)."""
    draw = random.Random(seed)
    base = base or _base_record()
    return [replace(base, application_id=f"APP-{draw.getrandbits(48):012x}") for _ in range(count)]


def _base_record() -> Record:
    return Record(
        time=datetime(2026, 1, 1, tzinfo=UTC), application_id="",
        request=dict(builtin_contract().example), score=0.8164808822698211, group="female",
        rule="female", draw=None, approval_probability=1.0, decision="deny",
        reasons=[{"code": "dti_high", "text": "debt-to-income ratio too high"}],
        model_version="fairgate-loan:bench", policy_version="p-bench", probe=False,
    )  # fmt: skip


async def _through_writer(
    store: RecordStore, url: str, batch: int, concurrency: int, seconds: float
) -> tuple[float, float]:
    """Through the writer the service uses for the store: SQLite's writer process,
    PostgreSQL's writer thread."""
    # A pool of distinct batches, reused round-robin (200,000 ids at batch 1,000).
    base = _base_record()
    pool = [sample_records(batch, seed, base) for seed in range(max(200_000 // batch, concurrency))]
    done = 0
    writer: ProcessWriter | RecordWriter = (
        ProcessWriter(url, store) if store.backend == "sqlite" else RecordWriter(store)
    ).start()
    deadline = time.perf_counter() + seconds

    async def appender(first: int) -> None:
        nonlocal done
        turn = first
        while time.perf_counter() < deadline:
            await writer.append(pool[turn % len(pool)])
            turn += concurrency
            done += batch

    start = time.perf_counter()
    await asyncio.gather(*(appender(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    commits = writer.commits
    if isinstance(writer, ProcessWriter):
        await writer.aclose()
    else:
        writer.close()
    return done / elapsed, done / max(commits, 1)


REPEATS = 5


def _best_rate(
    stores: dict[str, Callable[[list[StoredRecord]], None]], rows: int
) -> list[tuple[str, float]]:
    """Rows per second of the best of ``REPEATS`` transactions of ``rows`` pre-built rows."""
    records = sample_records(rows, seed=99)
    results = []
    for name, insert in stores.items():
        writer = f"raw-{name}-{time.time_ns()}"
        chunks = [chain(records, writer, i * rows, "0" * 64) for i in range(REPEATS)]
        best = float("inf")
        for chunk in chunks:
            start = time.perf_counter()
            insert(chunk)
            best = min(best, time.perf_counter() - start)
        results.append((name, rows / best))
    return results


def _sqlalchemy_insert(url: str) -> Callable[[list[StoredRecord]], None] | None:
    """SQLAlchemy Core ``insert()`` with a list of dicts (executemany), for comparison."""
    try:
        import sqlalchemy as sa
    except ImportError:
        return None
    from record.entry import COLUMNS
    from record.store import TABLE

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    table = sa.Table(TABLE, sa.MetaData(), autoload_with=engine)

    def insert(rows: list[StoredRecord]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows])

    return insert


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POSTGRES_URL"),
        help="a PostgreSQL URL (default: $POSTGRES_URL; none: SQLite only)",
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fairgate-record-bench-") as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'record.sqlite'}"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        else:
            print("no --postgres URL: SQLite only")
        stores = {name: open_record(url) for name, url in urls.items()}
        print(f"writer: {args.concurrency} concurrent appenders, {args.seconds:g} s each")
        print(f"{'store':<12}{'batch':>7}{'records/s':>12}{'records/commit':>16}")
        for name, store in stores.items():
            for batch in (1, 1000):
                rate, per_commit = asyncio.run(
                    _through_writer(store, urls[name], batch, args.concurrency, args.seconds)
                )
                print(f"{name:<12}{batch:>7}{rate:>12,.0f}{per_commit:>16,.0f}")
        print(f"one transaction of {RAW_ROWS:,} built rows, no writer (best of {REPEATS}):")
        inserts = {f"{name} ({INSERT_METHOD[name]})": store.append
                   for name, store in stores.items()}  # fmt: skip
        extra = []
        if "postgresql" in stores:
            extra.append(open_record(urls["postgresql"], insert="executemany"))
            inserts["postgresql (executemany)"] = extra[-1].append
        for name, url in urls.items():
            insert = _sqlalchemy_insert(url)
            if insert is None:
                print("  (SQLAlchemy not installed: pip install sqlalchemy to compare it)")
                break
            inserts[f"{name} (SQLAlchemy Core)"] = insert
        for name, rate in _best_rate(inserts, RAW_ROWS):
            print(f"  {name:<36}{rate:>12,.0f} rows/s")
        for store in extra:
            store.close()
        records = sample_records(10_000)
        start = time.perf_counter()
        chain(records, "cost", 0, "0" * 64)
        seconds = time.perf_counter() - start
        print(f"building a chained row (JSON + SHA-256): {seconds / 1e4 * 1e6:.1f} us")
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
