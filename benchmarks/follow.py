"""What a registry switch costs the clients of `python -m pipeline serve -m models:/NAME@ALIAS`:
latency of requests sent while the server loads and switches to the version the alias moved to,
beside requests sent by the same client to the same server while nothing moves.

    python benchmarks/follow.py --bundles ensemble models/bilstm --workers 1 --switches 6 \\
        --texts ../shared/data/nsmc/ratings_test.txt --out /tmp/follow.json

The two bundles are logged to a registry of their own (a SQLite store in a temporary folder) as
versions 1 and 2 of one model, `champion` on version 1. A server follows the alias every 0.5 s;
one client sends single texts back to back over a kept-alive connection. The alias then moves
--switches times between the versions, --steady-seconds apart. A request is "switching" when it
started between an alias move and one second after the server logged `every worker serves
version N` for it (the download, the background loads and the switch itself), else "steady".
Written to --out as JSON with the machine and date: requests, failures, p50/p99/max of each
class, and how long each switch took. Exit code 1 when a request failed or an answer came from
the version the alias had left after the switch was done.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from load import free_port, machine, percentile, read_texts, stop_server

REPO = Path(__file__).resolve().parents[1]
NAME = "follow-benchmark"
SETTLE = 1.0  # seconds after the switch still counted as "switching"


def registered_versions(bundles: list[Path], root: Path) -> None:
    """Log each bundle in a run of its own and register it: versions 1, 2, ... of NAME."""
    import mlflow

    from pipeline import tracking

    mlflow.create_experiment("follow-benchmark", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment("follow-benchmark")
    for bundle in bundles:
        with mlflow.start_run():
            info = tracking.log_pyfunc(bundle)
        mlflow.register_model(info.model_uri, NAME)
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", "1")


@dataclass
class Answers:
    """(start, seconds, version) of every answered request, and every failure."""

    rows: list[tuple[float, float, str | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)


def send(url: str, texts: list[str], answers: Answers) -> None:
    with requests.Session() as session:
        i = 0
        while not answers.stopped.is_set():
            body = {"inputs": [texts[i % len(texts)]]}
            i += 1
            began = time.perf_counter()
            try:
                response = session.post(url, json=body, timeout=60)
            except requests.RequestException as exc:
                answers.failures.append(type(exc).__name__)
                continue
            took = time.perf_counter() - began
            if response.status_code != 200:
                answers.failures.append(str(response.status_code))
                continue
            answers.rows.append((began, took, response.headers.get("x-model-version")))


def log_lines(process: subprocess.Popen) -> queue.Queue:
    """The server's stderr, line by line, with the time each line was read."""
    lines: queue.Queue = queue.Queue()

    def read():
        for line in process.stderr:
            lines.put((time.perf_counter(), line.rstrip()))

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue, pattern: str, timeout: float) -> float:
    """When a line matching `pattern` was read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            at, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if re.search(pattern, line):
            return at
    raise SystemExit(f"the server did not log {pattern!r} within {timeout:.0f} s")


def wait_until_ready(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if requests.get(url, timeout=30).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def summary(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {
        "requests": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": round(max(ms), 2) if ms else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=Path, nargs=2, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--switches", type=int, default=6)
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--texts", type=Path, help="an NSMC-format file")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for bundle in args.bundles:
        if not (bundle / "bundle.json").is_file():
            raise SystemExit(f"error: {bundle} is not a bundle")

    with tempfile.TemporaryDirectory(prefix="follow-benchmark-") as scratch:
        root = Path(scratch)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        registered_versions([b.resolve() for b in args.bundles], root)
        port = free_port()
        command = [sys.executable, "-m", "pipeline", "serve", "-m", f"models:/{NAME}@champion"]
        command += ["-p", str(port), "-w", str(args.workers), "--follow-interval", "0.5"]
        server = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            lines = log_lines(server)
            wait_until_ready(f"http://127.0.0.1:{port}/ping", server, 600)
            result = measure(f"http://127.0.0.1:{port}/invocations", lines, args)
        finally:
            stop_server(server)
    result.update(
        date=dt.date.today().isoformat(),
        machine=machine(),
        bundles=[str(b) for b in args.bundles],
        workers=args.workers,
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("steady", "switching", "failures")}))
    return 1 if result["failures"] or result["stale_answers"] else 0


def measure(url: str, lines: queue.Queue, args) -> dict:
    import mlflow

    answers = Answers()
    client = threading.Thread(target=send, args=(url, read_texts(args.texts, 2000), answers))
    client.start()
    windows, stale = [], 0
    try:
        time.sleep(args.steady_seconds)
        for switch in range(args.switches):
            version = "2" if switch % 2 == 0 else "1"
            moved = time.perf_counter()
            mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", version)
            done = wait_for_line(lines, rf"every worker serves version {version}\b", 600)
            windows.append((moved, done + SETTLE))
            time.sleep(args.steady_seconds)
            stale += sum(1 for start, _, v in answers.rows if start > done and v != version)
    finally:
        answers.stopped.set()
        client.join()

    def switching(start: float) -> bool:
        return any(moved <= start <= until for moved, until in windows)

    return {
        "steady": summary([took for start, took, _ in answers.rows if not switching(start)]),
        "switching": summary([took for start, took, _ in answers.rows if switching(start)]),
        "switch_seconds": [round(until - SETTLE - moved, 2) for moved, until in windows],
        "failures": answers.failures,
        "stale_answers": stale,
    }


if __name__ == "__main__":
    sys.exit(main())
