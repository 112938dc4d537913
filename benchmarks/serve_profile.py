"""Where one served single-text request spends its time: each step of the server's path timed
alone in this process, the whole guard called in-process (no socket), then whole requests over
loopback to `python -m pipeline serve` (one worker).

    python benchmarks/serve_profile.py --bundle ensemble --texts data/sample/reviews.tsv \
        --out /tmp/serve-profile.json

Each step is the median of --rounds calls over a cycle of real texts, in microseconds, wall
and CPU time; the HTTP steps also the server's CPU time per request (all its processes). The
bundle is saved as an MLflow model with this checkout's `pipeline` package (as
benchmarks/serving.py does). Written to --out as JSON with the machine and date.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from load import free_port, machine, read_texts, server_command, start_server, stop_server
from serving import REPO, save_model
from serving_clients import Client, server_cpu_seconds, single_body


def medians_us(steps: dict[str, Callable[[int], object]], rounds: int) -> dict[str, dict]:
    """Each step's median wall and CPU time (this process, all its threads) in microseconds;
    the steps take turns, call by call, so that the load of a shared host falls on all alike.
    On a busy host the wall time holds the waits for a core; the CPU time does not."""
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(rounds + 20):
        for name, step in steps.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            step(i)
            if i >= 20:
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)
    return {
        name: {
            "wall": round(statistics.median(wall[name]) * 1e6, 1),
            "cpu": round(statistics.median(cpu[name]) * 1e6, 1),
        }
        for name in steps
    }


def server_cpu_us(step: Callable[[int], object], rounds: int, pid: int) -> float:
    """The server's CPU time per call of `step` (all its processes), over `rounds` calls."""
    before = server_cpu_seconds(pid)
    for i in range(rounds):
        step(i)
    return round((server_cpu_seconds(pid) - before) / rounds * 1e6, 1)


def asgi_call(app, body: bytes):
    """One POST /invocations through the ASGI app, as uvicorn would hand it over."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    async def call():
        await app(scope, receive, send)
        return sent

    return call


def in_process_steps(model_dir: Path, texts: list[str], rounds: int) -> dict:
    import pandas as pd

    from pipeline.serve.checks import MAX_JSON_DEPTH, Limits, checked_json
    from pipeline.serve.fast import bundle_predict, plain_texts, predictions_json
    from pipeline.serve.guard import build_app, safe_error_type, text_checker
    from pipeline.serve.workers import load_model, warm_up

    safe_error_type()
    check = text_checker()
    model = load_model(model_dir)
    warm_up(model, model_dir)
    bodies = [single_body(text) for text in texts]
    requests = [json.loads(body) for body in bodies]
    frames = [pd.DataFrame({"text": [text]}) for text in texts]
    predict = bundle_predict(model)
    bundle = model.unwrap_python_model().bundle
    answers = [predict([text]) for text in texts]
    n = len(texts)

    def old_encoding(frame):
        columns = frame[["label", "sentiment", "probability"]]
        predictions = [
            {"label": int(label), "sentiment": str(sentiment), "probability": float(p)}
            for label, sentiment, p in columns.itertuples(index=False)
        ]
        return json.dumps({"predictions": predictions}).encode()

    limits = Limits(5_000_000, MAX_JSON_DEPTH, None)
    app = build_app(model, limits, lambda: (1, 1), check)
    slow = build_app(
        model,
        Limits(5_000_000, MAX_JSON_DEPTH, None, scoring_seconds=0.999),
        *(
            lambda: (1, 1),
            check,
        ),
    )

    loop = asyncio.new_event_loop()

    def hand_off(i):
        async def once():
            return await asyncio.wait_for(asyncio.to_thread(int, i), 60)

        loop.run_until_complete(once())

    steps = {
        "json_parse_and_checks": lambda i: checked_json(bodies[i % n], MAX_JSON_DEPTH),
        "plain_texts": lambda i: plain_texts(requests[i % n]),
        "dataframe": lambda i: pd.DataFrame({"text": [texts[i % n]]}),
        "pyfunc_predict_frame": lambda i: model.predict(frames[i % n]),
        "checked_model_predict_frame": lambda i: app.model.predict(frames[i % n]),
        "bundle_predict_texts": lambda i: predict([texts[i % n]]),
        "bundle_scores_only": lambda i: bundle.scores([texts[i % n]]),
        "encode_itertuples": lambda i: old_encoding(answers[i % n]),
        "encode_columns": lambda i: predictions_json(answers[i % n]),
        "thread_hand_off": hand_off,
        "guard_asgi_inline": lambda i: loop.run_until_complete(asgi_call(app, bodies[i % n])()),
        "guard_asgi_threads": lambda i: loop.run_until_complete(asgi_call(slow, bodies[i % n])()),
    }
    found = medians_us(steps, rounds)
    loop.close()
    return found


def over_http(model_dir: Path, texts: list[str], rounds: int) -> dict:
    import requests

    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return requests.get(base + "/ping", timeout=60).status_code == 200

    process = start_server(server_command("serve", str(model_dir), 1, port), ready, 600, REPO)
    try:
        bodies = [single_body(text) for text in texts]
        client = Client(base + "/invocations")
        session = requests.Session()
        n = len(bodies)

        def by_requests(i):
            session.post(base + "/invocations", data=bodies[i % n], headers=JSON).raise_for_status()

        steps = {
            "http_get_ping": lambda i: client.get("/ping"),
            "http_post_single_text": lambda i: client.post(bodies[i % n]),
            "http_post_single_text_requests_lib": by_requests,
        }
        found = medians_us(steps, rounds)
        for name, step in steps.items():
            found[name]["server_cpu"] = server_cpu_us(step, rounds, process.pid)
        client.close()
        session.close()
    finally:
        stop_server(process)
    return found


JSON = {"Content-Type": "application/json"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a trained bundle folder")
    parser.add_argument("--texts", type=Path, required=True, help="an NSMC-format file")
    parser.add_argument("--rounds", type=int, default=500, help="calls per step")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    texts = read_texts(args.texts, 200)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model(args.bundle.resolve(), REPO / "pipeline", Path(tmp) / "model")
        report = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
            "machine": machine(),
            "bundle": str(args.bundle),
            "microseconds": {
                **in_process_steps(model_dir, texts, args.rounds),
                **over_http(model_dir, texts, args.rounds),
            },
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
