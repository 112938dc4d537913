"""Latency and throughput of `mlflow models serve` on loopback; writes the numbers to JSON.

    python benchmarks/serving.py --model "models:/korean-sentiment@champion" \
        --out benchmarks/serving.json

Single-text requests: p50/p99 latency over --requests calls. Batch requests: 1,000 NSMC-style
texts per call, texts/s over --batches calls. Targets (issue 4): p50 <= 25 ms, p99 <= 60 ms,
>= 3,000 texts/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            model,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(240):
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise SystemExit("server did not start")


def texts_from(path: Path | None, count: int) -> list[str]:
    if path and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[1] for line in lines[:count]]
    return [f"리뷰 {i}: 배우 연기가 정말 좋았고 스토리도 탄탄했다 ㅎㅎ" for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--texts",
        type=Path,
        default=Path("../shared/data/nsmc/ratings_test.txt"),
        help="NSMC-format file to draw texts from (synthetic texts if absent)",
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()

    texts = texts_from(args.texts, 1000)
    port = free_port()
    server = start_server(args.model, port)
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        with requests.Session() as session:
            for text in texts[:20]:  # warm-up
                session.post(url, json={"inputs": [text]}).raise_for_status()
            latencies = []
            for i in range(args.requests):
                started = time.perf_counter()
                session.post(url, json={"inputs": [texts[i % len(texts)]]}).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
            session.post(url, json={"inputs": texts}).raise_for_status()
            batch_seconds = []
            for _ in range(args.batches):
                started = time.perf_counter()
                session.post(url, json={"inputs": texts}).raise_for_status()
                batch_seconds.append(time.perf_counter() - started)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    latencies.sort()
    result = {
        "model": args.model,
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "single_text_requests": args.requests,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "batch_size": len(texts),
        "batch_texts_per_s": round(len(texts) / statistics.median(batch_seconds)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
