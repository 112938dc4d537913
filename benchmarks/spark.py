"""Texts per second of `score-spark` on local[1] and local[2] against the single-process `predict`,
on the NSMC test split, each engine timed end to end as a user runs it (process start, model
load, read, score, write), with the Python workers' peak memory and threads.

    python benchmarks/spark.py --model models:/korean-sentiment@champion \\
        --nsmc-dir ../shared/data/nsmc --out benchmarks/spark.json [--limit 2000]

Runs from the project root (the registry is its mlflow.db unless MLFLOW_TRACKING_URI names
another). Measure on a quiet machine: every engine competes for the same cores.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import psutil

REPO = Path(__file__).resolve().parents[1]
LOAD = re.compile(
    r"model loaded in Python worker (\d+) \(([\d.]+) s, (\d+) MiB resident, (\d+) threads\)"
)
DAEMON = "pyspark.daemon"


class Sampler(threading.Thread):
    """Peak resident memory and threads of a process tree's Python workers (forked children of
    pyspark.daemon) or, for a single process, of the process itself, every `period` s."""

    def __init__(self, pid: int, workers: bool, period: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.workers, self.period = pid, workers, period
        self.peak: dict[int, dict[str, float]] = {}
        self.done = threading.Event()

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.root)
        if not self.workers:
            return [root]
        found = []
        for child in root.children(recursive=True):
            try:
                parent = child.parent()
                if (
                    DAEMON in " ".join(child.cmdline())
                    and parent
                    and DAEMON in " ".join(parent.cmdline())
                ):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def run(self):
        while not self.done.is_set():
            try:
                for process in self.processes():
                    with process.oneshot():
                        rss, threads = process.memory_info().rss / 2**20, process.num_threads()
                    peak = self.peak.setdefault(process.pid, {"rss_mib": 0.0, "threads": 0})
                    peak["rss_mib"] = max(peak["rss_mib"], round(rss))
                    peak["threads"] = max(peak["threads"], threads)
            except psutil.Error:
                pass
            self.done.wait(self.period)


def timed(args: list[str], workers: bool) -> dict:
    """Run one command to the end: wall seconds, the workers' peaks and model loads."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started = time.perf_counter()
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = Sampler(process.pid, workers)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise click.ClickException(f"{' '.join(args)} failed:\n{stderr[-3000:]}")
    loads = [
        {"pid": int(p), "seconds": float(s), "rss_mib": int(r), "threads": int(t)}
        for p, s, r, t in LOAD.findall(stderr)
    ]
    return {
        "command": " ".join(args),
        "wall_s": round(seconds, 2),
        "model_loads": loads,
        "peak_per_process": list(sampler.peak.values()),
        "stdout": stdout.strip().splitlines()[-1:],
    }


def nsmc_slice(nsmc_dir: Path, limit: int | None, folder: Path) -> tuple[Path, int]:
    lines = (nsmc_dir / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    rows = lines[1:] if limit is None else lines[1 : limit + 1]
    path = folder / "ratings_test.tsv"
    path.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return path, len(rows)


def machine() -> dict:
    info = Path("/proc/cpuinfo")
    lines = info.read_text(encoding="utf-8").splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return {
        "platform": platform.platform(),
        "cpu": names[0] if names else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


@click.command()
@click.option("--model", default="models:/korean-sentiment@champion", show_default=True)
@click.option(
    "--nsmc-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=REPO.parent / "shared/data/nsmc",
    show_default=True,
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N reviews only.")
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="score-spark's.")
def main(model, nsmc_dir, out, limit, partitions):
    """Time predict, score-spark local[1] and local[2] (and local[2] with the model's own
    thread settings) on the NSMC test split; write the numbers to --out."""
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    host = machine()
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmp:
        source, rows = nsmc_slice(nsmc_dir, limit, Path(tmp))
        cli = [sys.executable, "-m", "pipeline"]
        common = ["--model", model, "--input", str(source)]
        predict = [*cli, "predict", *common, "--text-column", "document"]
        runs = {"predict": timed([*predict, "--output", f"{tmp}/predict.csv"], workers=False)}
        spark = [*cli, "score-spark", *common, "--text-column", "document"]
        spark += ["--conf", "spark.ui.enabled=false"]
        spark += ["--partitions", str(partitions)] if partitions else []
        for name, extra in (
            ("spark_local1", ["--master", "local[1]"]),
            ("spark_local2", ["--master", "local[2]"]),
            ("spark_local2_model_threads", ["--master", "local[2]", "--task-threads", "0"]),
        ):
            runs[name] = timed([*spark, *extra, "--output", f"{tmp}/{name}"], workers=True)
            click.echo(f"{name}: {runs[name]['wall_s']} s", err=True)
    for run in runs.values():
        run["texts_per_s"] = round(rows / run["wall_s"], 1)
    speed = {name: run["texts_per_s"] for name, run in runs.items()}
    result = {
        "date": started,
        "machine": host,
        "model": model,
        "reviews": rows,
        "engines": runs,
        "speedup": {
            "spark_local1_vs_predict": round(speed["spark_local1"] / speed["predict"], 3),
            "spark_local2_vs_predict": round(speed["spark_local2"] / speed["predict"], 3),
            "spark_local2_vs_local1": round(speed["spark_local2"] / speed["spark_local1"], 3),
            "one_thread_per_task_vs_model_threads": round(
                speed["spark_local2"] / speed["spark_local2_model_threads"], 3
            ),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(out)
    click.echo(json.dumps({"texts_per_s": speed, "speedup": result["speedup"]}))


if __name__ == "__main__":
    main()
