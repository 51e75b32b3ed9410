"""Soak: the mixed Locust scenario at ~70% of measured capacity, with the decision record on.

    python -m loadtests.soak --minutes 5              # SQLite record (as shipped)
    python -m loadtests.soak --minutes 5 --postgres   # PostgreSQL, restarted mid-soak

Starts the service (1 worker) recording into ``--out`` (SQLite) or into a throwaway
PostgreSQL server (``loadtests/postgres.py``), measures capacity with a short flat-out run of
the same scenario, then runs at 70% of it for the given time while sampling the resident
memory of the server's processes every 10 s. With ``--postgres`` the server is stopped at
half time and started again ``--down`` seconds later.

Every answer Locust gets is logged (``loadtests/answers.py``) and checked against the store
afterwards: every 200 has its record (each application id answered n times has at least n
records), no answer is a 5xx other than the documented 503 with Retry-After (record store
unavailable), and the service answers 200 again after the store is back. Exits 1 on a lost
record, an unexpected status, memory growth >= 10% between the first sample after warm-up
and the last, or (SQLite) any failed request.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from fairgate.probe_auth import new_token
from loadtests.answers import ENV_VAR, read_answers
from loadtests.runner import LocustRun, run_locust
from loadtests.server import running_server
from record import open_record

WARMUP_SECONDS = 30


def tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


@dataclass(frozen=True)
class RecordCheck:
    """Answers against records: what the soak reports and judges."""

    statuses: Counter[int]
    answered: int  # decisions in 200 answers
    records: int  # records in the store
    missing: int  # answered decisions with no record
    extra: int  # records beyond the answered ones (a 503 whose commit had in fact landed)
    last_200_after_outage: bool

    @property
    def unexpected(self) -> dict[int, int]:
        return {code: n for code, n in self.statuses.items() if code not in (200, 503)}


def check_records(answers_file: Path, url: str, back_at: float | None) -> RecordCheck:
    answers = read_answers(answers_file)
    # A 503 without Retry-After is not the documented answer: counted apart (as -503).
    statuses = Counter(-503 if status == 503 and not retry else status
                       for status, _, _, retry in answers)  # fmt: skip
    answered = Counter(i for status, _, ids, _ in answers if status == 200 for i in ids)
    store = open_record(url, create=False)
    try:
        stored = Counter(row.application_id for row in store.rows_between())
    finally:
        store.close()
    missing = sum(max(0, n - stored[i]) for i, n in answered.items())
    again = back_at is None or any(
        status == 200 and sent > back_at for status, sent, _, _ in answers
    )
    return RecordCheck(statuses, sum(answered.values()), sum(stored.values()), missing,
                       sum(stored.values()) - sum(answered.values()) + missing, again)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--load", type=float, default=0.7, help="share of measured capacity")
    parser.add_argument("--out", type=Path, default=Path("soak-out"))
    parser.add_argument(
        "--postgres", action="store_true",
        help="record into a throwaway PostgreSQL server, restarted mid-soak",
    )  # fmt: skip
    parser.add_argument("--down", type=float, default=10.0,
                        help="seconds PostgreSQL stays stopped (with --postgres)")  # fmt: skip
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    answers_file = (args.out / "answers.jsonl").resolve()
    token = new_token()
    postgres = None
    if args.postgres:
        from loadtests.postgres import PostgresServer

        postgres = PostgresServer()
        url = postgres.url
    else:
        url = f"sqlite:///{(args.out / 'record' / 'record.sqlite').resolve()}"
    load_env = {"FAIRGATE_PROBE_TOKEN": token, ENV_VAR: str(answers_file)}
    back_at: float | None = None
    try:
        env = {"FAIRGATE_PROBE_TOKEN": token, "FAIRGATE_RECORD_URL": url}
        with running_server(workers=1, env=env) as server:
            capacity = run_locust(
                LocustRun(host=server.url, users=args.users, run_time="15s", env=load_env),
                args.out / "capacity", progress=_progress,
            )["Aggregated"].rps  # fmt: skip
            rate = args.load * capacity / args.users
            print(f"capacity {capacity:.0f} tasks/s; soaking at {args.load:.0%} = "
                  f"{rate * args.users:.0f}/s for {args.minutes} min, record: "
                  f"{'PostgreSQL, restarted at half time' if postgres else 'SQLite'}")  # fmt: skip
            samples: list[tuple[float, int]] = []
            done = threading.Event()
            outage: list[float] = []

            def sample() -> None:
                started = time.monotonic()
                while not done.wait(10):
                    samples.append((time.monotonic() - started, tree_rss(server.pid)))

            def restart() -> None:
                assert postgres is not None
                if done.wait(args.minutes * 30):
                    return
                outage.append(time.time())
                print(f"  stopping PostgreSQL for {args.down:.0f} s", flush=True)
                postgres.stop()
                time.sleep(args.down)
                postgres.start()
                outage.append(time.time())
                print("  PostgreSQL started again", flush=True)

            threads = [threading.Thread(target=sample, daemon=True)]
            if postgres is not None:
                threads.append(threading.Thread(target=restart, daemon=True))
            for thread in threads:
                thread.start()
            stats = run_locust(
                LocustRun(host=server.url, users=args.users,
                          run_time=f"{int(args.minutes * 60)}s",
                          env=load_env | {"FAIRGATE_LOAD_RATE": str(rate)}),
                args.out / "soak", html=args.out / "soak.html", progress=_progress,
            )["Aggregated"]  # fmt: skip
            done.set()
            for thread in threads:
                thread.join()
            if len(outage) == 2:
                back_at = outage[1]
        check = check_records(answers_file, url, back_at)
    finally:
        if postgres is not None:
            postgres.destroy()
    after_warmup = [rss for t, rss in samples if t >= WARMUP_SECONDS]
    base, last, peak = after_warmup[0], after_warmup[-1], max(after_warmup)
    growth = last / base - 1
    print(
        f"requests {stats.requests:,}, failures {stats.failures}, {stats.rps:.0f} req/s, "
        f"p50 {stats.p50_ms:.0f} ms, p95 {stats.p95_ms:.0f} ms, p99 {stats.p99_ms:.0f} ms"
    )
    print(f"server RSS after warm-up {base / 2**20:.1f} MiB, at end {last / 2**20:.1f} MiB, "
          f"peak {peak / 2**20:.1f} MiB: growth {growth:+.1%}")  # fmt: skip
    codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(check.statuses.items()))
    print(f"answers (capacity run and soak) by status: {codes}")
    print(f"decisions answered 200: {check.answered:,}; records in the store: {check.records:,}; "
          f"answered without a record: {check.missing}; records of no 200 answer: "
          f"{check.extra} (a 503 whose commit had landed)")  # fmt: skip
    if postgres is not None:
        print(f"200s again after PostgreSQL was back: {check.last_200_after_outage}")
    ok = (
        check.missing == 0
        and not check.unexpected
        and growth < 0.10
        and check.last_200_after_outage
        and (postgres is not None or (stats.failures == 0 and check.extra == 0))
    )
    print("soak passed" if ok else "soak FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
