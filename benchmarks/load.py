"""A bounded load test: N concurrent clients for T seconds against a server it starts on loopback
(`python -m pipeline serve` or `mlflow models serve`), first single texts, then batches.

    python benchmarks/load.py --model "models:/korean-sentiment@champion" --server serve \
        --workers 2 --clients 8 --seconds 300 --out benchmarks/load-serve.json

Every phase first runs --warmup-seconds unmeasured (the same clients and requests), then each
runs --seconds measured. Reports per phase requests, errors, p50/p99 latency and texts/s, and the
workers' resident memory (RSS summed over the worker processes, via psutil) once loaded, after
the warm-up ("start"), at the end of each phase and every 5 s. Exits 1 when any request failed
or the workers' RSS grew by more than --max-rss-growth from start to end; the JSON file (with
machine and date) is written either way. Run it from the project root (`python -m pipeline`
and the default tracking store are found from there).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

TRACKERS = ("resource_tracker", "semaphore_tracker")
SAMPLE_SECONDS = 5.0  # RSS is sampled this often during a phase (more often in short ones)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind: str, model: str, workers: int, port: int) -> list[str]:
    options = ["--port", str(port), "--workers", str(workers)]
    if kind == "serve":
        return [sys.executable, "-m", "pipeline", "serve", "-m", model, *options]
    mlflow = ["mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    return [*mlflow, "-h", "127.0.0.1", *options]


def start_server(
    command: list[str], ready: Callable[[], bool], timeout: float, cwd: Path | None = None
) -> subprocess.Popen:
    """Start a server in its own process group; return once `ready()` (a request to it) is
    true."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode} while starting")
        try:
            if ready():
                return process
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    stop_server(process)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def workers(root: int) -> list[psutil.Process]:
    """The server's worker processes: its descendants without children of their own (the
    process that holds the model when there is one worker), multiprocessing's trackers aside."""
    found = []
    for process in psutil.Process(root).children(recursive=True):
        try:
            if process.children() or any(t in " ".join(process.cmdline()) for t in TRACKERS):
                continue
            found.append(process)
        except psutil.Error:
            pass
    return found


def rss_mb(root: int) -> float:
    total = 0
    for process in workers(root):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return round(total / 2**20, 1)


def read_texts(path: Path | None, count: int) -> list[str]:
    """Reviews from an NSMC-format file (id, document, label), else synthetic ones."""
    if path and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        texts = [line.split("\t")[1] for line in lines if line.count("\t") == 2]
        return [t for t in texts if t.strip()][:count]
    return [f"리뷰 {i}: 배우 연기가 정말 좋았고 스토리도 탄탄했다 ㅎㅎ" for i in range(count)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)


@dataclass
class Phase:
    name: str
    batch_size: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    texts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, started: float, outcome: str | None, texts: int) -> None:
        with self.lock:
            if outcome is None:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.texts += texts
            else:
                self.errors.append(outcome)


def client(url: str, phase: Phase, batches: list[list[str]], offset: int, deadline: float):
    with requests.Session() as session:
        i = offset
        while time.monotonic() < deadline:
            batch = batches[i % len(batches)]
            i += 1
            started = time.perf_counter()
            try:
                response = session.post(url, json={"inputs": batch}, timeout=120)
                ok = response.status_code == 200 and len(response.json()["predictions"]) == len(
                    batch
                )
                outcome = None if ok else f"HTTP {response.status_code}"
            except (requests.RequestException, ValueError, KeyError) as exc:
                outcome = type(exc).__name__
            phase.record(started, outcome, len(batch))


def run_phase(url, phase: Phase, texts, clients, seconds, server_pid, samples, t0) -> dict:
    size = phase.batch_size
    batches = [
        [texts[(start + j) % len(texts)] for j in range(size)]
        for start in range(0, max(len(texts), size), size)
    ]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(url, phase, batches, k * 7, deadline))
        for k in range(clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        samples.append([round(time.monotonic() - t0, 1), rss_mb(server_pid)])
        time.sleep(min(SAMPLE_SECONDS, max(0.5, seconds / 10)))
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "phase": phase.name,
        "batch_size": size,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(phase.latencies_ms) + len(phase.errors),
        "errors": len(phase.errors),
        "error_kinds": sorted(set(phase.errors)),
        "p50_ms": percentile(phase.latencies_ms, 0.50),
        "p99_ms": percentile(phase.latencies_ms, 0.99),
        "texts_per_s": round(phase.texts / elapsed, 1),
        "rss_mb_at_end": rss_mb(server_pid),
    }


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model URI, as both servers take it")
    parser.add_argument("--server", choices=("serve", "mlflow"), default="serve")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=300, help="length of each phase")
    parser.add_argument("--batch-size", type=int, default=1000, help="texts per batch request")
    parser.add_argument("--phases", default="single,batch", help="single, batch or both")
    parser.add_argument(
        "--texts",
        type=Path,
        default=Path("../shared/data/nsmc/ratings_test.txt"),
        help="NSMC-format file to draw texts from (synthetic texts if absent)",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=10,
        help="length of each phase's unmeasured warm-up run",
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.10,
        help="largest allowed growth of the workers' RSS from after warm-up to the end",
    )
    parser.add_argument("--start-timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or set(phases) - {"single", "batch"}:
        parser.error("--phases takes single, batch or single,batch")

    texts = read_texts(args.texts, 20_000)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = server_command(args.server, args.model, args.workers, port)
    started_at = dt.datetime.now(dt.UTC)
    server = start_server(
        command,
        lambda: requests.get(f"{base}/ping", timeout=args.start_timeout).status_code == 200,
        args.start_timeout,
    )
    url = f"{base}/invocations"
    samples: list[list[float]] = []
    t0 = time.monotonic()
    try:
        rss_loaded = rss_mb(server.pid)
        samples.append([0.0, rss_loaded])
        warm_up = []  # the same load, briefly: allocators and caches reach their working size
        for name in phases if args.warmup_seconds > 0 else []:
            phase = Phase(name, 1 if name == "single" else args.batch_size)
            warm_up.append(
                run_phase(
                    url, phase, texts, args.clients, args.warmup_seconds, server.pid, samples, t0
                )
            )
        rss_start = rss_mb(server.pid)
        samples.append([round(time.monotonic() - t0, 1), rss_start])
        results = []
        for name in phases:
            phase = Phase(name, 1 if name == "single" else args.batch_size)
            results.append(
                run_phase(url, phase, texts, args.clients, args.seconds, server.pid, samples, t0)
            )
        rss_end = rss_mb(server.pid)
        samples.append([round(time.monotonic() - t0, 1), rss_end])
        worker_count = len(workers(server.pid))
    finally:
        stop_server(server)

    growth = rss_end / rss_start - 1 if rss_start else None
    errors = sum(r["errors"] for r in warm_up + results)
    failures = []
    if errors:
        failures.append(f"{errors} requests failed")
    if growth is None or growth > args.max_rss_growth:
        failures.append(f"worker RSS grew by {growth:.1%} (limit {args.max_rss_growth:.0%})")
    report = {
        "date": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "server": args.server,
        "server_command": " ".join(re.sub(r"^.*/python[\d.]*$", "python", c) for c in command),
        "model": args.model,
        "workers": args.workers,
        "worker_processes_measured": worker_count,
        "texts_source": str(args.texts) if args.texts.is_file() else "synthetic",
        "warm_up": warm_up,
        "phases": results,
        "rss_mb_loaded": rss_loaded,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "rss_growth": None if growth is None else round(growth, 4),
        "rss_samples": samples,
        "passed": not failures,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
