"""Records per second into each store, through the group-commit writer (not a timed test).

    python -m fairgate.record.bench [--postgres URL] [--seconds 3] [--concurrency 32]

For each backend and batch size (1: ``/decide``; 1000: a full ``/decide_batch``),
``--concurrency`` asyncio tasks await ``writer.append`` in a loop, as concurrent requests of
one service worker do. Then, without the writer, one transaction of 1,000 rows per insert
method (the comparison behind the backend choices in docs/record.md), and the cost of
building a chained row (JSON and SHA-256) alone. ``python -m tests.postgres`` runs it with a
throwaway PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fairgate.contract import builtin_contract
from fairgate.record.entry import Record, chain
from fairgate.record.store import RecordStore, open_record
from fairgate.record.writer import RecordWriter


def sample_records(count: int) -> list[Record]:
    """``count`` records of the synthetic book's example applicant, ids made distinct."""
    request = dict(builtin_contract().example)
    base = Record(
        time=datetime(2026, 1, 1, tzinfo=UTC), application_id="", request=request,
        score=0.8164808822698211, group="female", rule="female", draw=None,
        approval_probability=1.0, decision="deny",
        reasons=[{"code": "dti_high", "text": "debt-to-income ratio too high"}],
        model_version="fairgate-loan:bench", policy_version="p-bench", probe=False,
    )  # fmt: skip
    return [replace(base, application_id=f"APP-{i:07d}") for i in range(count)]


async def _through_writer(
    store: RecordStore, batch: int, concurrency: int, seconds: float
) -> tuple[float, float]:
    records = sample_records(batch)
    done = 0
    with RecordWriter(store) as writer:
        deadline = time.perf_counter() + seconds

        async def appender() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await writer.append(records)
                done += batch

        start = time.perf_counter()
        await asyncio.gather(*(appender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        return done / elapsed, done / max(writer.commits, 1)


def _best_of(repeats: int, action: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _raw_inserts(stores: dict[str, RecordStore], rows: int = 1000) -> list[tuple[str, float]]:
    records = sample_records(rows)
    results = []
    seq = 0
    for name, store in stores.items():

        def one_transaction(store: RecordStore = store, writer: str = f"raw-{name}") -> None:
            nonlocal seq
            chained = chain(records, writer, seq, "0" * 64)
            seq += rows
            store.append(chained)

        results.append((name, rows / _best_of(5, one_transaction)))
    return results


def _sqlalchemy_inserts(urls: dict[str, str], rows: int = 1000) -> list[tuple[str, float]]:
    """SQLAlchemy Core ``insert()`` with a list of dicts (executemany), for comparison."""
    try:
        import sqlalchemy as sa
    except ImportError:
        print("  (SQLAlchemy not installed: pip install sqlalchemy to compare it)")
        return []
    from fairgate.record.entry import COLUMNS
    from fairgate.record.store import TABLE

    results = []
    records = sample_records(rows)
    for name, url in urls.items():
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        table = sa.Table(TABLE, sa.MetaData(), autoload_with=engine)
        seq = 0

        def one_transaction(
            engine: sa.Engine = engine, table: sa.Table = table, writer: str = f"sa-{name}"
        ) -> None:
            nonlocal seq
            chained = chain(records, writer, seq, "0" * 64)
            seq += rows
            with engine.begin() as conn:
                conn.execute(table.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in chained])

        results.append((f"{name} (SQLAlchemy Core)", rows / _best_of(5, one_transaction)))
        engine.dispose()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("POSTGRES_URL"),
                        help="a PostgreSQL URL (default: $POSTGRES_URL; none: SQLite only)")
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
                    _through_writer(store, batch, args.concurrency, args.seconds)
                )
                print(f"{name:<12}{batch:>7}{rate:>12,.0f}{per_commit:>16,.0f}")
        print("one transaction of 1,000 rows, no writer (best of 5):")
        raw = _raw_inserts(stores)
        if "postgresql" in stores:
            pg = open_record(urls["postgresql"], insert="executemany")
            raw += [("postgresql (executemany)", rate) for _, rate in _raw_inserts({"pg": pg})]
            pg.close()
        raw += _sqlalchemy_inserts(urls)
        for name, rate in raw:
            print(f"  {name:<36}{rate:>12,.0f} rows/s")
        records = sample_records(10_000)
        seconds = _best_of(3, lambda: chain(records, "cost", 0, "0" * 64))
        print(f"building a chained row (JSON + SHA-256): {seconds / 1e4 * 1e6:.1f} us")
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
