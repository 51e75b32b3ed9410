"""Instructions per request, counted by valgrind's callgrind: /decide against the validating floor.

``python -m loadtests.instructions [--model TAG] [--requests 500]`` (needs valgrind:
``apt-get install valgrind``; the model defaults to ``fairgate.artifacts.DEFAULT_MODEL``).
Any model of the default book will do, the same one before and after a change (``fairgate
bench`` deletes the model it trains).

Requests per second on a shared machine move from one run to the next by more than most
changes to /decide's path; an instruction count does not: the same code, model and requests
count the same to within a fraction of a percent (docs/benchmarks.md has the figures). A
change is measured here first, then confirmed with ``fairgate bench``. Instructions are not
time: a cache miss costs none, and under load the decision runs slower per instruction than
in a loop.

Each endpoint's real ASGI app (BentoML's middlewares, validation and metrics, fairgate's
guards and handler) runs in this process, driven without sockets, so uvicorn and the client
are not counted. A child process per endpoint runs under callgrind with instrumentation off;
after a warm-up it turns counting on (``callgrind_control``) for the measured requests only.
The floor runs with default GC and /decide with the tuned GC, as in ``fairgate bench``; the
record is off (its writer is another process, which callgrind would not follow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# endpoint -> (ASGI app's module:class, path, FAIRGATE_GC)
ENDPOINTS = {
    "floor": ("loadtests.bench_service:BenchService", "/floor_validated", "default"),
    "decide": ("service.service:DecisionService", "/decide", "tuned"),
}
WARM_UP = 300


async def _lifespan(app: Any) -> asyncio.Task[None]:
    """Run the app's start-up (BentoML creates the service instance there); the task
    waits for a shutdown message that never comes, and is kept until the run ends."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    task = asyncio.ensure_future(app(scope, incoming.get, outgoing.put))
    message = await outgoing.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {message}")
    return task


async def post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through the app, as uvicorn would hand it over; (status, body)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = [], []

    async def receive() -> dict[str, Any]:
        if not requests:  # nothing on these paths waits for a disconnect
            raise RuntimeError(f"{path} read its request twice")
        return requests.pop()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(chunks)


def _counting(on: bool) -> None:
    switch = "on" if on else "off"
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True,
                   capture_output=True)  # fmt: skip


def child(endpoint: str, model: str, requests: int, count: bool) -> list[tuple[int, bytes]]:
    """Drive one endpoint in this process (its metrics in the caller's
    PROMETHEUS_MULTIPROC_DIR); the answers (status, body) to the measured requests."""
    target, path, gc = ENDPOINTS[endpoint]
    # Read when the service module is imported and when its instance starts.
    os.environ.update(FAIRGATE_MODEL=model, FAIRGATE_RECORD="off", FAIRGATE_GC=gc,
                      OMP_NUM_THREADS="1")  # fmt: skip
    import importlib

    from loadtests.pool import synthetic_pool

    module, name = target.split(":")
    app = getattr(importlib.import_module(module), name).to_asgi(is_main=True)
    bodies = [json.dumps(body).encode() for body in synthetic_pool(2000).singles]

    async def run() -> list[tuple[int, bytes]]:
        lifespan = await _lifespan(app)
        for i in range(WARM_UP):
            await post(app, path, bodies[i % len(bodies)])
        if count:
            _counting(True)
        answers = [await post(app, path, bodies[i % len(bodies)]) for i in range(requests)]
        if count:
            _counting(False)
        lifespan.cancel()
        return answers

    return asyncio.run(run())


def count_instructions(endpoint: str, model: str, requests: int) -> int:
    """Instructions per request of ``endpoint``, from a child run under callgrind."""
    with tempfile.TemporaryDirectory(prefix="fairgate-callgrind-") as out:
        output = Path(out) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={output}", sys.executable, "-m", "loadtests.instructions",
            "--child", endpoint, "--model", model, "--requests", str(requests),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{endpoint}: the callgrind run failed:\n{done.stderr[-3000:]}")
        totals = [line for line in output.read_text().splitlines() if line.startswith("totals:")]
        return int(totals[0].split()[1]) // requests


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="a model trained on the default book (fairgate train makes one); "
        "default: the default model's newest version",
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--child", choices=sorted(ENDPOINTS), help=argparse.SUPPRESS)
    parser.add_argument("--no-count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="fairgate-metrics-") as metrics:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics  # BentoML's and ours, gone after
            # Imported here, not at the top: bentoml's metrics read the directory on import.
            from fairgate.artifacts import DEFAULT_MODEL

            model = args.model or DEFAULT_MODEL
            answers = child(args.child, model, args.requests, count=not args.no_count)
        statuses = [status for status, _ in answers]
        print(json.dumps({"statuses": statuses, "last": json.loads(answers[-1][1])}))
        if set(statuses) != {200}:
            raise SystemExit(f"{args.child}: answers other than 200: {sorted(set(statuses))}")
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("loadtests.instructions needs valgrind (apt-get install valgrind)")
    import bentoml

    from fairgate.artifacts import DEFAULT_MODEL

    model = str(bentoml.models.get(args.model or DEFAULT_MODEL).tag)  # one for both runs
    counts = {endpoint: count_instructions(endpoint, model, args.requests)
              for endpoint in ENDPOINTS}  # fmt: skip
    print(f"model {model}, {args.requests} requests each after {WARM_UP} of warm-up")
    print("| endpoint | instructions per request |\n|---|---:|")
    for endpoint, value in counts.items():
        print(f"| {ENDPOINTS[endpoint][1]} | {value:,} |")
    print(f"/decide over the floor: {counts['decide'] - counts['floor']:+,} "
          f"({counts['decide'] / counts['floor']:.3f} x)")  # fmt: skip


if __name__ == "__main__":
    main()
