"""The HTTP clients of benchmarks/serving.py and benchmarks/serve_profile.py: kept-alive
`http.client` connections (no client library on the measured path beyond the standard one),
single-text latency from one client, and N concurrent clients with the server's CPU per request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import psutil
from load import percentile

HEADERS = {"Content-Type": "application/json"}


def single_body(text: str) -> bytes:
    return json.dumps({"inputs": [text]}, ensure_ascii=False).encode()


class Client:
    """One kept-alive connection; it reconnects when the server closes it (`Connection: close`
    after --max-requests-per-connection answers)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def post(self, body: bytes) -> bytes:
        self.conn.request("POST", self.path, body, HEADERS)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return data

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.read()

    def close(self) -> None:
        self.conn.close()


def single_latencies(url: str, texts: list[str], requests_n: int, warmup: int = 50) -> list[float]:
    """Milliseconds per single-text request, one client, one request after another."""
    bodies = [single_body(text) for text in texts[: max(requests_n, warmup)]]
    client = Client(url)
    try:
        for i in range(warmup):
            client.post(bodies[i % len(bodies)])
        latencies = []
        for i in range(requests_n):
            started = time.perf_counter()
            client.post(bodies[i % len(bodies)])
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
    return latencies


def server_cpu_seconds(pid: int) -> float:
    """User and system CPU of the server process and all its descendants."""
    total = 0.0
    processes = [psutil.Process(pid)]
    with contextlib.suppress(psutil.Error):
        processes += processes[0].children(recursive=True)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def concurrent(
    url: str, texts: list[str], clients: int, seconds: float, warmup: float, server_pid: int
) -> dict:
    """`clients` threads, each a kept-alive connection sending single texts back to back for
    `warmup` seconds unmeasured, then `seconds` measured: requests/s, p50/p99 and the server's
    CPU milliseconds per request."""
    bodies = [single_body(text) for text in texts[:1000]]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    measuring = threading.Event()
    stop = threading.Event()

    def run(offset: int) -> None:
        client = Client(url)
        i = offset
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    client.post(bodies[i % len(bodies)])
                    outcome = None
                except Exception as exc:  # a failed request is counted, the client goes on
                    outcome = f"{type(exc).__name__}: {exc}"[:200]
                    client.close()
                if measuring.is_set() and not stop.is_set():
                    with lock:
                        if outcome is None:
                            latencies.append((time.perf_counter() - started) * 1000)
                        else:
                            errors.append(outcome)
                i += clients
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    cpu = server_cpu_seconds(server_pid)
    started = time.perf_counter()
    measuring.set()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    cpu = server_cpu_seconds(server_pid) - cpu
    for thread in threads:
        thread.join(60)
    done = len(latencies)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": done,
        "errors": len(errors),
        "requests_per_s": round(done / elapsed, 1),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "server_cpu_ms_per_request": round(cpu * 1000 / done, 2) if done else None,
    }
