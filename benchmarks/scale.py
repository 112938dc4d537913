"""How the data stages' time and memory grow with the corpus: `prepare`, `tokenize` and `split`
on a synthetic corpus of k times NSMC, for this tree's code and (optionally) another revision's.

    python benchmarks/scale.py --nsmc-dir ../shared/data/nsmc --scales 1,4 \\
        --baseline main --out benchmarks/scale.json

The corpus: copy 0 of every NSMC row (train and test) is the row itself; copy j >= 1 appends
one space and a short interjection tail spelled from j (`tail`), so each copy's texts differ from
every other copy's and de-duplication keeps k times as much; labels are copied as they are, so the
class balance is NSMC's. Empty reviews stay empty, and copy j of a training text meets copy j of
the same test text, so every cleaning reason scales by k too.

Each stage runs as `python -m pipeline <stage>` with params.yaml's settings (both tokenizers)
in a scratch project under --work-dir, started by a small launcher process; its wall time, CPU
time (user + system, all its threads: the measure that survives a shared machine) and peak
resident memory (the kernel's ru_maxrss of that one process, from wait4) are recorded with the
documents it read. The outputs'
sha256 are recorded too: the baseline's and this tree's must be equal. Results merge into --out
by (code, scale), so scales can be run one at a time.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "tokenize", "split")
NSMC_FILES = ("ratings_train.txt", "ratings_test.txt")
TAILS = ("ㅋㅋ", "ㅎㅎ", "ㅠㅠ", "!!", "~~", "^^", "..", "ㄷㄷ")


def tail(copy: int) -> str:
    """The interjections that mark copy `copy` (>= 1): its base-8 digits, one tail each."""
    digits = []
    while copy:
        copy, digit = divmod(copy, len(TAILS))
        digits.append(TAILS[digit])
    return "".join(reversed(digits))


def write_corpus(nsmc_dir: Path, scale: int, folder: Path, limit: int | None = None) -> None:
    """NSMC's two files (their first `limit` rows), each `scale` times, copy after copy, in
    NSMC's format."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in NSMC_FILES:
        lines = (nsmc_dir / name).read_text(encoding="utf-8").splitlines()
        lines = lines[: limit + 1] if limit else lines
        with (folder / name).open("w", encoding="utf-8") as out:
            out.write(lines[0] + "\n")
            for copy in range(scale):
                for line in lines[1:]:
                    row_id, text, label = line.split("\t")
                    if copy and text.strip():
                        text = f"{text} {tail(copy)}"
                    out.write(f"{row_id}-{copy}\t{text}\t{label}\n")


def project(code: Path, corpus: Path, work: Path) -> Path:
    """A scratch folder with params.yaml pointed at the corpus (NSMC format, unverified)."""
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((code / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(source="nsmc", nsmc_dir=str(corpus), nsmc_verify=False)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    return work


def stage_command(stage: str) -> list[str]:
    return {
        "prepare": [
            "--sample-file",
            str(REPO / "data/sample/reviews.tsv"),
            "--download-dir",
            "data/raw",
            "--out-dir",
            "data/prepared",
            "--report",
            "reports/data.json",
        ],
        "tokenize": ["--in-dir", "data/prepared", "--out-dir", "data/tokenized"],
        "split": ["--in-dir", "data/tokenized", "--out-dir", "data/split"],
    }[stage]


# Starts the stage and reports its wait4 rusage: a stage started straight from this process
# would count this process's memory as its own (Linux keeps the peak of the pre-exec copy).
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
status = os.waitstatus_to_exitcode(status)
result = {"status": status, "seconds": seconds, "cpu": cpu, "kb": usage.ru_maxrss}
open(sys.argv[1], "w").write(json.dumps(result))
"""


def run_stage(code: Path, work: Path, stage: str, command: list[str] | None = None) -> dict:
    """Wall seconds and peak RSS of one stage in its own process, niced like its caller;
    `command` (after `python -m pipeline`) defaults to the data stage's."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))},
        "PYTHONPATH": str(code),
    }
    args = [sys.executable, "-m", "pipeline", *(command or [stage, *stage_command(stage)])]
    log, measured = work / f"{stage}.log", work / f"{stage}.json"
    with log.open("wb") as output:
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(measured), *args],
            cwd=work,
            env=env,
            stdout=output,
            stderr=output,
            check=False,
        )
    result = json.loads(measured.read_text())
    if result["status"]:
        raise click.ClickException(f"{stage} failed:\n{log.read_text()[-3000:]}")
    return {
        "seconds": round(result["seconds"], 1),
        "cpu_seconds": round(result["cpu"], 1),
        "peak_rss_mb": round(result["kb"] / 1024),
    }


def documents_in(work: Path, stage: str) -> int:
    """The documents a stage read: rows of the source files, or lines of its input folder."""
    if stage == "prepare":
        return sum(json.loads((work / "reports/data.json").read_text())["rows_read"].values())
    folder = work / ("data/prepared" if stage == "tokenize" else "data/tokenized")
    return sum(_lines(path) for path in folder.glob("*.jsonl"))


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def outputs_digest(work: Path) -> str:
    digest = hashlib.sha256()
    for path in [*sorted((work / "data").rglob("*")), work / "reports/data.json"]:
        if path.is_file() and "raw" not in path.parts:
            digest.update(str(path.relative_to(work)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def measure(code: Path, label: str, scale: int, corpus: Path, work: Path) -> dict:
    folder = project(code, corpus, work)
    stages = {}
    for stage in STAGES:
        result = run_stage(code, folder, stage)
        documents = documents_in(folder, stage)
        result["documents"] = documents
        result["seconds_per_1000_docs"] = round(result["seconds"] / documents * 1000, 3)
        result["cpu_seconds_per_1000_docs"] = round(result["cpu_seconds"] / documents * 1000, 3)
        stages[stage] = result
        click.echo(f"{label} {scale}x {stage}: {result}", err=True)
    return {
        "code": label,
        "scale": scale,
        "stages": stages,
        "outputs_sha256": outputs_digest(folder),
    }


def baseline_tree(revision: str, folder: Path) -> Path:
    """The files of `revision` (git archive) in `folder`."""
    archive = subprocess.run(
        ["git", "archive", revision], cwd=REPO, check=True, capture_output=True
    ).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def revision_label(revision: str) -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=REPO, check=True, capture_output=True
    )
    return f"{revision}@{sha.stdout.decode().strip()}"


def tree_label() -> str:
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "pipeline"], cwd=REPO, capture_output=True
    )
    return revision_label("HEAD") + ("+changes" if dirty.stdout.strip() else "")


def merged(out: Path, runs: list[dict], section: str = "runs") -> dict:
    """--out's results with `runs` in `section`, replacing those of the same code (its name
    before '@') and scale; the file's other sections are kept as they were."""
    previous = json.loads(out.read_text()) if out.exists() else {"runs": []}
    replaced = {(r["code"].split("@")[0], r["scale"]) for r in runs}
    kept = [
        r
        for r in previous.get(section, [])
        if (r["code"].split("@")[0], r["scale"]) not in replaced
    ]
    return {**previous, section: sorted(kept + runs, key=lambda r: (r["scale"], r["code"]))}


@click.command()
@click.option("--nsmc-dir", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--scales", default="1,4", show_default=True, help="Comma-separated k values.")
@click.option("--baseline", default=None, help="A git revision to measure beside this tree.")
@click.option("--baseline-scales", default=None, help="k values for the baseline (default all).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/scale.json")
@click.option("--limit", type=int, default=None, help="Only the first N rows of each file.")
@click.option("--baseline-only", is_flag=True, help="Measure the baseline revision alone.")
def main(nsmc_dir, scales, baseline, baseline_scales, work_dir, out, limit, baseline_only):
    """Time and peak memory of the data stages on k times NSMC."""
    ks = [int(k) for k in scales.split(",")]
    baseline_ks = [int(k) for k in baseline_scales.split(",")] if baseline_scales else ks
    work = Path(work_dir or tempfile.mkdtemp(prefix="scale-"))
    codes = [] if baseline_only else [(REPO, tree_label())]
    if baseline:
        codes.insert(0, (baseline_tree(baseline, work / "baseline"), revision_label(baseline)))
    runs = []
    for k in ks:
        corpus = work / f"corpus-{k}x"
        write_corpus(nsmc_dir, k, corpus, limit)
        for code, label in codes:
            if code != REPO and k not in baseline_ks:
                continue
            runs.append(measure(code, label, k, corpus, work / f"{k}x-{code.name}"))
            shutil.rmtree(work / f"{k}x-{code.name}")
        shutil.rmtree(corpus)
    result = merged(out, runs)
    result.update(
        machine=f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}",
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        niceness=os.nice(0),
        corpus="k copies of NSMC's train and test files; copy j >= 1 appends ' ' + tail(j)",
        limit=limit,
    )
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    click.echo(table(result))


def table(result: dict) -> str:
    lines = [
        "| code | k | stage | documents | wall s | wall s / 1,000 docs | CPU s / 1,000 docs "
        "| peak RSS MB | outputs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for stage, s in run["stages"].items():
            lines.append(
                f"| {run['code']} | {run['scale']}× | {stage} | {s['documents']:,} | "
                f"{s['seconds']} | {s['seconds_per_1000_docs']} | "
                f"{s.get('cpu_seconds_per_1000_docs', '–')} | {s['peak_rss_mb']:,} | "
                f"{run['outputs_sha256'][:12]} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
