"""Serving speed of a trained bundle, this code beside an earlier revision's, in one run.

    python benchmarks/serving.py --bundle benchmarks/runs/<time>/ensemble \
        --texts ../shared/data/nsmc/ratings_test.txt --previous 6280ec6 --out /tmp/serving.json

The bundle is saved as an MLflow model twice, once with this checkout's `pipeline` package and
once with the package of `--previous` (git), and each is served on loopback by its own
revision's `python -m pipeline serve` (run from the folder holding that revision's package).
Measured:

- single texts (`single_text`): `mlflow.pyfunc.load_model(model).predict(DataFrame)` in this
  process and one kept-alive `http.client` connection to each revision's server (one worker),
  taking turns request by request, who goes first rotating (p50/p99 over --requests, after 50
  warm-ups), the CPU time
  per request (this process's around `predict`; each server's, all its processes), and each
  server's cold start (process start to the first answered request);
- concurrent single texts (`concurrent`): 8, then 32 kept-alive clients against `--workers 2`
  of each revision, requests/s, p50/p99 and the server's CPU time per request, in
  --concurrent-rounds rounds that take the revisions in turn (which worker a kept-alive client
  lands on is chance, and moves one run's requests/s by a quarter), with each round's figures
  and their medians;
- per revision, one worker (`servers`): 1,000-text requests over the whole file (texts/s),
  1,000-text requests of texts with no visible character (what a request costs besides
  tokenizing and scoring), the worker's RSS after the warm-up and at the end, every prediction.

Beside them, in this process on the same 1,000-text batches: the bundle's tokenizer(s) alone,
the limit of a design that tokenizes every text; tokenizing then scoring, and tokenizing the
next chunk while scoring this one; and the CPU time the tokenizers and the models need, which
bounds how near that limit any server can get. Written to --out as JSON with the machine and
date; both servers' labels must agree and their probabilities differ by at most 1e-6, else the
exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from load import (
    free_port,
    machine,
    percentile,
    read_texts,
    rss_mb,
    server_command,
    start_server,
    stop_server,
)
from serving_clients import Client, concurrent, server_cpu_seconds, single_body

REPO = Path(__file__).resolve().parents[1]
BATCH = 1000
OVERLAP_CHUNKS = 4
NO_VISIBLE_TEXT = "\u200b"  # answered label -1 without tokenizing or scoring
TOLERANCE = 1e-6
START_TIMEOUT = 600  # seconds a server may take to answer its first request
WARMUP = 50  # single-text requests before the measured ones
CLIENTS = (8, 32)  # concurrent single-text clients, against two workers
CONCURRENT_WARMUP_S = 3.0


def package_of(revision: str | None, dest: Path) -> Path:
    """The `pipeline` package of a git revision (None: this checkout's), as a folder."""
    if revision is None:
        return REPO / "pipeline"
    archive = subprocess.run(
        ["git", "archive", revision, "pipeline"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "pipeline"


SAVE = """
import sys
from pathlib import Path

import mlflow.pyfunc

import pipeline
from pipeline.pyfunc import INPUT_EXAMPLE, SIGNATURE

package = Path(pipeline.__file__).parent
mlflow.pyfunc.save_model(
    path=sys.argv[2],
    python_model=str(package / "pyfunc_entry.py"),
    artifacts={"bundle": sys.argv[1]},
    code_paths=[str(package)],
    signature=SIGNATURE,
    input_example=INPUT_EXAMPLE,
)
"""


def save_model(bundle: Path, package: Path, dest: Path) -> Path:
    """The bundle as an MLflow pyfunc model that runs `package`'s code (model from code), saved
    by a process that imports that package."""
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    subprocess.run(
        [sys.executable, "-c", SAVE, str(bundle), str(dest)], cwd=dest.parent, env=env, check=True
    )
    return dest


def in_process(bundle: Path, batches: list[list[str]], rounds: int = 2) -> dict:
    """The bundle's tokenizers and models in this process, on the batches as a server gets
    them (normalised): the tokenizers alone, which is the limit of a design that tokenizes every
    text; tokenize-then-score; and overlapped, the next chunk tokenized in a thread while this
    one is scored. Rates are the best of `rounds` interleaved passes (the host is shared).
    Then the CPU the tokenizers and the models need per 1,000 texts, and `overlap_bound`: the
    best batch/tokenizer ratio any server could reach if it kept every core busy all the time,
    cores x tokenizer wall / (tokenizer CPU + models' CPU)."""
    from pipeline.serving import Bundle
    from pipeline.text import normalize_text

    model = Bundle(bundle)
    texts = [[normalize_text(text) for text in batch] for batch in batches]

    def tokenize(batch: list[str]) -> dict[str, list[list[str]]]:
        return {name: split(batch) for name, split in model.tokenizers.items()}

    sequential = model.probabilities  # tokenizes, then scores
    with ThreadPoolExecutor(1) as pool:

        def overlapped(batch: list[str]) -> np.ndarray:
            size = -(-len(batch) // OVERLAP_CHUNKS)
            chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
            tokens = [pool.submit(tokenize, chunk) for chunk in chunks]  # one after another
            return np.concatenate(
                [model.probabilities(c, t.result()) for c, t in zip(chunks, tokens, strict=True)]
            )

        designs = {"tokenizer": tokenize, "sequential": sequential, "overlapped": overlapped}
        sequential(texts[0][:200])
        overlapped(texts[0][:200])
        seconds = {name: math.inf for name in designs}
        for _ in range(rounds):
            for name, run in designs.items():
                started = time.perf_counter()
                for batch in texts:
                    run(batch)
                seconds[name] = min(seconds[name], time.perf_counter() - started)
    size = sum(map(len, batches))
    rates = {name: round(size / s) for name, s in seconds.items()}
    wall, cpu = cpu_ms_per_1000(model, tokenize, texts)
    return {
        "tokenizer_texts_per_s": rates["tokenizer"],
        "cpu_ms_per_1000_texts": cpu,
        "overlap_bound": round(os.cpu_count() * wall / sum(cpu.values()), 3),
        "in_process": {
            "overlap_chunks": OVERLAP_CHUNKS,
            **{f"{name}_texts_per_s": rate for name, rate in rates.items() if name != "tokenizer"},
            **{
                f"{name}_vs_tokenizer": round(rate / rates["tokenizer"], 3)
                for name, rate in rates.items()
                if name != "tokenizer"
            },
        },
    }


def cpu_ms_per_1000(model, tokenize, texts: list[list[str]]) -> tuple[float, dict[str, float]]:
    """The tokenizers' wall time per 1,000 texts, and the CPU time of the tokenizers (in the
    same pass) and of the models on their tokens."""
    wall, cpu = time.perf_counter(), time.process_time()
    tokens = [tokenize(batch) for batch in texts]
    wall, tokenizers = time.perf_counter() - wall, time.process_time() - cpu
    cpu = time.process_time()
    for batch, batch_tokens in zip(texts, tokens, strict=True):
        model.probabilities(batch, batch_tokens)
    models = time.process_time() - cpu
    per_1000 = 1000 / sum(map(len, texts))
    return wall * per_1000 * 1000, {
        "tokenizers": round(tokenizers * per_1000 * 1000, 1),
        "models": round(models * per_1000 * 1000, 1),
    }


def serve(model: Path, code: Path, workers: int = 1) -> tuple[subprocess.Popen, str, float]:
    """Start `python -m pipeline serve` on the model, run from `code` (the folder holding the
    revision's `pipeline` package, so that the server's code is that revision's too, not only
    the model's); the URL and the seconds until the first request was answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/invocations"

    def answered() -> bool:
        reply = requests.post(url, json={"inputs": ["첫 요청"]}, timeout=START_TIMEOUT)
        return reply.status_code == 200

    started = time.perf_counter()
    process = start_server(
        server_command("serve", str(model), workers, port), answered, START_TIMEOUT, cwd=code
    )
    return process, url, time.perf_counter() - started


def single_texts(
    models: dict[str, Path], codes: dict[str, Path], texts: list[str], requests_n: int
) -> dict:
    """Single-text latency in process (`mlflow.pyfunc.load_model(model).predict(DataFrame)`, the
    current model) and over HTTP to each revision's server (one worker, one kept-alive
    client), taking turns request by request so that the host's load falls on all alike."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(models["current"]))
    frames = [pd.DataFrame({"text": [text]}) for text in texts[: max(requests_n, 100)]]
    bodies = [single_body(text) for text in texts[: len(frames)]]
    servers = {name: serve(path, codes[name]) for name, path in models.items()}
    clients = {name: Client(url) for name, (_, url, _) in servers.items()}
    latencies: dict[str, list[float]] = {"in_process": [], **{name: [] for name in servers}}
    cpu = {"in_process": 0.0}
    names = list(latencies)
    turns = [names[k:] + names[:k] for k in range(len(names))]
    try:
        for i in range(requests_n + WARMUP):
            if i == WARMUP:
                cpu |= {
                    name: server_cpu_seconds(process.pid) for name, (process, *_) in servers.items()
                }
            found = {}
            for name in turns[i % len(turns)]:  # who goes first rotates: it may find a core busy
                started, cpu_started = time.perf_counter(), time.process_time()
                if name == "in_process":
                    model.predict(frames[i % len(frames)])
                    if i >= WARMUP:
                        cpu["in_process"] += time.process_time() - cpu_started
                else:
                    clients[name].post(bodies[i % len(bodies)])
                found[name] = time.perf_counter() - started
            if i >= WARMUP:
                for name, seconds in found.items():
                    latencies[name].append(seconds * 1000)
        for name, (process, *_) in servers.items():
            cpu[name] = server_cpu_seconds(process.pid) - cpu[name]
    finally:
        for client in clients.values():
            client.close()
        for process, _, _ in servers.values():
            stop_server(process)
    result = {
        name: {"p50_ms": percentile(found, 0.5), "p99_ms": percentile(found, 0.99)}
        for name, found in latencies.items()
    }
    for name, seconds in cpu.items():  # the server's: every process of it, all threads
        result[name]["cpu_ms_per_request"] = round(seconds * 1000 / requests_n, 2)
    for name, (_, _, cold) in servers.items():
        result[name]["cold_start_s"] = round(cold, 2)
    for name in servers:
        result[name]["p50_over_in_process_ms"] = round(
            result[name]["p50_ms"] - result["in_process"]["p50_ms"], 2
        )
        result[name]["p99_over_in_process_ms"] = round(
            result[name]["p99_ms"] - result["in_process"]["p99_ms"], 2
        )
    return {"requests": requests_n, **result}


def concurrent_clients(model: Path, code: Path, texts: list[str], seconds: float) -> dict:
    """Single texts from 8 and then 32 concurrent kept-alive clients against two workers."""
    process, url, _ = serve(model, code, workers=2)
    try:
        return {
            f"clients_{n}": concurrent(url, texts, n, seconds, CONCURRENT_WARMUP_S, process.pid)
            for n in CLIENTS
        }
    finally:
        stop_server(process)


def concurrent_rounds(
    models: dict[str, Path], codes: dict[str, Path], texts: list[str], seconds: float, rounds: int
) -> dict:
    """`concurrent_clients` of each revision, `rounds` times, the revisions taking turns (who goes
    first alternates): each round's figures, and per client count the medians over rounds."""
    found: dict[str, list[dict]] = {name: [] for name in models}
    names = list(models)
    for k in range(rounds):
        for name in names if k % 2 == 0 else names[::-1]:
            found[name].append(concurrent_clients(models[name], codes[name], texts, seconds))
    return {name: {**medians(runs), "rounds": runs} for name, runs in found.items()}


def medians(runs: list[dict]) -> dict:
    keys = ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")
    return {
        f"clients_{n}": {
            "clients": n,
            "errors": sum(run[f"clients_{n}"]["errors"] for run in runs),
            **{key: statistics.median(run[f"clients_{n}"][key] for run in runs) for key in keys},
        }
        for n in CLIENTS
    }


def batches_served(model: Path, code: Path, batches: list[list[str]]) -> dict:
    """1,000-text requests over the whole file, and of texts with no visible character."""
    process, url, _ = serve(model, code)
    try:
        with requests.Session() as session:
            session.post(url, json={"inputs": batches[0]}).raise_for_status()
            rss_start = rss_mb(process.pid)
            overhead = []
            for _ in range(20):  # what a request costs besides tokenizing and scoring
                started = time.perf_counter()
                session.post(url, json={"inputs": [NO_VISIBLE_TEXT] * BATCH}).raise_for_status()
                overhead.append((time.perf_counter() - started) * 1000)
            predictions, seconds = [], []
            for batch in batches:
                started = time.perf_counter()
                response = session.post(url, json={"inputs": batch})
                response.raise_for_status()
                seconds.append(time.perf_counter() - started)
                predictions += response.json()["predictions"]
            rss_end = rss_mb(process.pid)
    finally:
        stop_server(process)
    return {
        "batch_requests": len(batches),
        "batch_texts_per_s": round(sum(map(len, batches)) / sum(seconds)),
        "batch_median_s": round(statistics.median(seconds), 3),
        "no_visible_text_batch_ms": percentile(overhead, 0.5),
        "worker_rss_mb": {"start": rss_start, "end": rss_end},
        "predictions": predictions,
    }


def agreement(previous: list[dict], current: list[dict]) -> dict:
    labels = [p["label"] for p in previous], [p["label"] for p in current]
    old, new = (np.array([p["probability"] for p in ps]) for ps in (previous, current))
    return {
        "texts": len(current),
        "labels_differ": int(sum(a != b for a, b in zip(*labels, strict=True))),
        "max_probability_difference": float(np.abs(old - new).max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a trained bundle folder")
    parser.add_argument("--texts", type=Path, required=True, help="an NSMC-format file")
    parser.add_argument("--previous", default=None, help="git revision to compare with")
    parser.add_argument("--limit", type=int, default=None, help="texts used (default: all)")
    parser.add_argument("--requests", type=int, default=1000, help="single-text requests")
    parser.add_argument(
        "--concurrent-seconds", type=float, default=10.0, help="measured seconds per client count"
    )
    parser.add_argument(
        "--concurrent-rounds", type=int, default=3, help="rounds of concurrent clients"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    texts = read_texts(args.texts, args.limit or 10**9)
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    report = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "previous": args.previous,
        "bundle": str(args.bundle),
        "texts": len(texts),
        **in_process(args.bundle, batches),
        "servers": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"current": None} | ({"previous": args.previous} if args.previous else {})
        models, codes = {}, {}
        for name, revision in versions.items():
            package = package_of(revision, Path(tmp) / f"{name}-code")
            codes[name] = package.parent
            models[name] = save_model(args.bundle.resolve(), package, Path(tmp) / f"{name}-model")
        report["single_text"] = single_texts(models, codes, texts, args.requests)
        report["concurrent"] = concurrent_rounds(
            models, codes, texts, args.concurrent_seconds, args.concurrent_rounds
        )
        for name, model in models.items():
            report["servers"][name] = result = batches_served(model, codes[name], batches)
            result["batch_vs_tokenizer"] = round(
                result["batch_texts_per_s"] / report["tokenizer_texts_per_s"], 3
            )
    servers = report["servers"]
    ok = True
    if "previous" in servers:
        report["agreement"] = agreement(
            servers["previous"]["predictions"], servers["current"]["predictions"]
        )
        found = report["agreement"]
        ok = found["labels_differ"] == 0 and found["max_probability_difference"] <= TOLERANCE
    for result in servers.values():
        del result["predictions"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
