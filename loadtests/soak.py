"""Soak: the mixed Locust scenario at ~70% of measured capacity, watching worker memory.

    python -m loadtests.soak --minutes 5

Starts the service (1 worker), measures capacity with a short flat-out run of the same
scenario, then runs at 70% of it for the given time while sampling the resident memory of
the server's processes every 10 s. Exits 1 on any failed request or memory growth >= 10%
between the first sample after warm-up and the last.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import psutil

from loadtests.runner import LocustRun, run_locust
from loadtests.server import running_server

WARMUP_SECONDS = 30


def tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--load", type=float, default=0.7, help="share of measured capacity")
    parser.add_argument("--out", type=Path, default=Path("soak-out"))
    args = parser.parse_args()
    with running_server(workers=1) as server:
        capacity = run_locust(
            LocustRun(host=server.url, users=args.users, run_time="15s"), args.out / "capacity",
            progress=_progress,
        )["Aggregated"].rps
        rate = args.load * capacity / args.users
        print(f"capacity {capacity:.0f} tasks/s; soaking at {args.load:.0%} = "
              f"{rate * args.users:.0f}/s for {args.minutes} min")  # fmt: skip
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not done.wait(10):
                samples.append((time.monotonic() - started, tree_rss(server.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stats = run_locust(
            LocustRun(host=server.url, users=args.users, run_time=f"{int(args.minutes * 60)}s",
                      env={"FAIRGATE_LOAD_RATE": str(rate)}),
            args.out / "soak", html=args.out / "soak.html", progress=_progress,
        )["Aggregated"]  # fmt: skip
        done.set()
        sampler.join()
    after_warmup = [rss for t, rss in samples if t >= WARMUP_SECONDS]
    base, last, peak = after_warmup[0], after_warmup[-1], max(after_warmup)
    growth = last / base - 1
    print(
        f"requests {stats.requests:,}, failures {stats.failures}, {stats.rps:.0f} req/s, "
        f"p50 {stats.p50_ms:.0f} ms, p95 {stats.p95_ms:.0f} ms, p99 {stats.p99_ms:.0f} ms"
    )
    print(f"server RSS after warm-up {base / 2**20:.1f} MiB, at end {last / 2**20:.1f} MiB, "
          f"peak {peak / 2**20:.1f} MiB: growth {growth:+.1%}")  # fmt: skip
    ok = stats.failures == 0 and growth < 0.10
    print("soak passed" if ok else "soak FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
