"""How the model stages' time and memory grow with the corpus: `train` of one TF-IDF and one
LSTM variant, and `evaluate`, on k times NSMC's split, for this tree's code and (optionally)
another revision's.

    python benchmarks/scale_models.py --split-dir ../nsmc-run/data/split --scales 1,4 \\
        --baseline 6280ec6 --out benchmarks/scale.json

The input is not re-tokenized (Kiwi at 16x would take hours here): it is a 1x split that
`prepare`, `tokenize` and `split` wrote from NSMC (--split-dir, e.g. a `make benchmark` run's
data/split), copied k times as benchmarks/scale.py copies the raw files: copy 0 is the record
itself, copy j >= 1 appends ' ' + tail(j) to the text and tail(j) as one more token to each
tokenizer's tokens ('/SW', Kiwi's tag for such symbols, for a tagging tokenizer). Labels and
the vocabularies are kept, so the class balance is NSMC's in every split.

The variants: `tfidf` as params.yaml defines it (character 1-4-grams of the raw text, the
largest vocabulary of the TF-IDF family), and `base` for one epoch over the whole k-times
training split with a small network (LSTM_SETTINGS: 16 units, batch 512), so that reading,
encoding and feeding the data, which is what grows with the corpus, is what is timed, not a
fixed cost per step. `evaluate` scores both on the k-times validation and test splits and
registers the champion in a SQLite MLflow store of the scratch project. Measured per stage:
wall and CPU time and peak RSS of its process (scale.run_stage), and the documents it read
(train: train + validation, evaluate: validation + test). Results go under "model_runs" in
--out, merged by (code, scale) after every stage, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import click
import yaml
from scale import REPO, baseline_tree, revision_label, run_stage, tail, tree_label

SPLITS = ("train", "validation", "test")
LSTM_SETTINGS = {"type": "lstm", "epochs": 1, "batch_size": 512, "units": 16, "embedding_dim": 16}
VARIANTS = {"tfidf": {"type": "tfidf_logreg"}, "base": LSTM_SETTINGS}
STAGES = {
    "train@tfidf": ("train", "validation"),
    "train@base": ("train", "validation"),
    "evaluate": ("validation", "test"),
}


def write_split(source: Path, scale: int, folder: Path) -> dict[str, int]:
    """`scale` copies of the split in `source` (see the module's docstring); lines per file."""
    shutil.copytree(source / "vocab", folder / "vocab")
    return write_copies(source, SPLITS, scale, folder)


def write_copies(source: Path, names: tuple[str, ...], scale: int, folder: Path) -> dict[str, int]:
    """`scale` copies of each `source/<name>.jsonl` in `folder`, with `source`'s
    tokenizers.json; lines per file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "tokenizers.json", folder / "tokenizers.json")
    tagged = {
        name: config.get("tags", False)
        for name, config in json.loads((source / "tokenizers.json").read_text()).items()
    }
    sizes = {}
    for name in names:
        lines = (source / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            for copy in range(scale):
                for line in lines:
                    out.write((_copied(line, copy, tagged) if copy else line) + "\n")
        sizes[name] = len(lines) * scale
    return sizes


def _copied(line: str, copy: int, tagged: dict[str, bool]) -> str:
    record = json.loads(line)
    mark = tail(copy)
    if record["text"].strip():
        record["text"] = f"{record['text']} {mark}"
        for name, tokens in record["tokens"].items():
            tokens.append(f"{mark}/SW" if tagged.get(name) else mark)
    return json.dumps(record, ensure_ascii=False)


def project(code: Path, split: Path, work: Path) -> Path:
    """A scratch project: the code's params.yaml with only VARIANTS and no ensemble, and the
    split linked in as data/split."""
    (work / "data").mkdir(parents=True)
    (work / "data/split").symlink_to(split)
    (work / "reports").mkdir()
    (work / "reports/data.json").write_text(json.dumps({"source": "nsmc"}))
    params = yaml.safe_load((code / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["variants"] = VARIANTS
    params["evaluate"]["ensemble"] = {"members": []}
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    return work


def stage_command(stage: str) -> list[str]:
    if stage == "evaluate":
        return [
            "evaluate",
            *("--data-dir", "data/split", "--models-dir", "models", "--runs-dir", "reports/train"),
            *("--ensemble-dir", "ensemble", "--out-dir", "reports/evaluate"),
        ]
    variant = stage.split("@")[1]
    return [
        "train",
        *("--variant", variant, "--data-dir", "data/split", "--data-report", "reports/data.json"),
        *("--model-dir", f"models/{variant}", "--reports-dir", f"reports/train/{variant}"),
    ]


def measure(code, label, scale, split, sizes, work, out) -> dict:
    folder = project(code, split, work)
    run = {"code": label, "scale": scale, "stages": {}}
    for stage, read in STAGES.items():
        result = run_stage(code, folder, stage.replace("@", "-"), stage_command(stage))
        documents = sum(sizes[name] for name in read)
        result["documents"] = documents
        result["seconds_per_1000_docs"] = round(result["seconds"] / documents * 1000, 3)
        result["cpu_seconds_per_1000_docs"] = round(result["cpu_seconds"] / documents * 1000, 3)
        run["stages"][stage] = result
        click.echo(f"{label} {scale}x {stage}: {result}", err=True)
        save(out, run)
    metrics = json.loads((folder / "reports/evaluate/metrics.json").read_text())
    run["accuracy"] = {v: {s: m[s]["accuracy"] for s in m} for v, m in metrics.items()}
    save(out, run)
    return run


def save(out: Path, run: dict) -> None:
    """Merge `run` into --out's model_runs by (code, scale), atomically."""
    result = json.loads(out.read_text()) if out.exists() else {"runs": []}
    key = (run["code"].split("@")[0], run["scale"])
    kept = [r for r in result.get("model_runs", []) if (r["code"].split("@")[0], r["scale"]) != key]
    result["model_runs"] = sorted([*kept, run], key=lambda r: (r["scale"], r["code"]))
    result["model_runs_info"] = {
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "niceness": os.nice(0),
        "input": "k copies of a 1x NSMC split; copy j >= 1 appends tail(j) to text and tokens",
        "variants": VARIANTS,
    }
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out)


@click.command()
@click.option("--split-dir", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--scales", default="1,4", show_default=True, help="Comma-separated k values.")
@click.option("--baseline", default=None, help="A git revision to measure beside this tree.")
@click.option("--baseline-scales", default=None, help="k values for the baseline (default all).")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/scale.json")
@click.option("--baseline-only", is_flag=True, help="Measure the baseline revision alone.")
def main(split_dir, scales, baseline, baseline_scales, work_dir, out, baseline_only):
    """Time and peak memory of train (tfidf, base) and evaluate on k times NSMC's split."""
    ks = [int(k) for k in scales.split(",")]
    baseline_ks = [int(k) for k in baseline_scales.split(",")] if baseline_scales else ks
    work = Path(work_dir or tempfile.mkdtemp(prefix="scale-models-")).resolve()
    if baseline_only and not baseline:
        raise click.UsageError("--baseline-only needs --baseline")
    codes = [] if baseline_only else [(REPO, tree_label())]
    if baseline:
        codes.insert(0, (baseline_tree(baseline, work / "baseline"), revision_label(baseline)))
    for k in ks:
        split = work / f"split-{k}x"
        sizes = write_split(split_dir.resolve(), k, split)
        for code, label in codes:
            if code != REPO and k not in baseline_ks:
                continue
            measure(code, label, k, split, sizes, work / f"{k}x-{code.name}", out)
            shutil.rmtree(work / f"{k}x-{code.name}")
        shutil.rmtree(split)
    click.echo(table(json.loads(out.read_text())))


def table(result: dict) -> str:
    lines = [
        "| code | k | stage | documents | wall s | wall s / 1,000 docs | CPU s / 1,000 docs "
        "| peak RSS MB | test accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result.get("model_runs", []):
        for stage, s in run["stages"].items():
            variant = stage.partition("@")[2]
            accuracy = run.get("accuracy", {}).get(variant, {}).get("test")
            lines.append(
                f"| {run['code']} | {run['scale']}× | {stage} | {s['documents']:,} | "
                f"{s['seconds']} | {s['seconds_per_1000_docs']} | "
                f"{s['cpu_seconds_per_1000_docs']} | {s['peak_rss_mb']:,} | "
                f"{'–' if accuracy is None else accuracy} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
