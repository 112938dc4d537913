"""`benchmark`: the whole pipeline on NSMC in a fresh copy of the project, plus scoring speed.

Results go to a JSON file and a Markdown table; every number in them comes from the run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

from pipeline import bundle, ensemble
from pipeline.errors import PipelineError
from pipeline.io import read_json, read_jsonl, write_json
from pipeline.options import path_option
from pipeline.project import copy_project, git_commit, repo_root
from pipeline.report import markdown_table
from pipeline.tracking import EXECUTION_ENV, EXECUTION_TAG, VARIANT_TAG


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied key by key, recursively."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            merged(base[key], value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return out


def merged_params(params_file: Path, overrides_file: Path) -> dict:
    """The params file with the benchmark's overrides merged over it."""
    return merged(
        yaml.safe_load(params_file.read_text(encoding="utf-8")),
        yaml.safe_load(overrides_file.read_text(encoding="utf-8")),
    )


def benchmark_params(params_file: Path, overrides_file: Path, nsmc_dir: Path | None) -> dict:
    """The benchmark's params: NSMC from `nsmc_dir`, else (data.nsmc_dir null) downloaded by
    `prepare` and checked against the official sha256."""
    params = merged_params(params_file, overrides_file)
    if nsmc_dir is not None:
        if not (nsmc_dir / "ratings_train.txt").is_file():
            raise PipelineError(f"{nsmc_dir} has no ratings_train.txt")
        params["data"]["nsmc_dir"] = str(nsmc_dir.resolve())
    return params


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def scoring_speed(bundle_dir: Path, texts: list[str]) -> dict:
    """Texts per second through the served model's code path (tokenizer + model, no HTTP)."""
    from pipeline.serving import Bundle

    model = Bundle(bundle_dir)
    model.predict(texts[:100])
    started = time.perf_counter()
    model.predict(texts)
    seconds = time.perf_counter() - started
    return {"scoring_texts_per_s": round(len(texts) / seconds)}


def tokenizer_speed(tokenizers: dict, texts: list[str]) -> dict:
    from pipeline.tokenizers import TokenizerConfig, make_tokenizer

    speeds = {}
    for name, config in tokenizers.items():
        tokenize = make_tokenizer(TokenizerConfig(**config))
        tokenize(texts[:200])
        started = time.perf_counter()
        tokenize(texts)
        speeds[name] = round(len(texts) / (time.perf_counter() - started))
    return speeds


COLUMNS = {
    "variant": "variant",
    "type": "type",
    "val_accuracy": "val acc",
    "test_accuracy": "test acc",
    "test_f1": "test F1",
    "test_roc_auc": "test ROC-AUC",
    "epochs": "epochs (best)",
    "train_seconds": "train s",
    "scoring_texts_per_s": "scoring texts/s",
}


def results_table(report: dict) -> str:
    rows = [[_cell(row, key) for key in COLUMNS] for row in report["variants"]]
    m = report["machine"]
    return (
        f"NSMC benchmark, {report['date']}, commit {report['commit'][:10]}, "
        f"{m['cpu']} ({m['cores']} cores), {report['device']}.\n"
        f"Whole `dvc repro` (all stages, all variants): {report['repro_seconds'] / 60:.1f} min. "
        f"Tokenizer throughput (reviews/s): "
        + ", ".join(f"{k} {v:,}" for k, v in report["tokenizer_reviews_per_s"].items())
        + f". Test set: {report['test_size']:,} reviews.\n\n"
        + markdown_table(list(COLUMNS.values()), rows)
    )


def _cell(row: dict, key: str):
    if key == "variant":
        return f"**{row['variant']}** (champion)" if row["champion"] else row["variant"]
    if key == "epochs":
        return None if row["epochs_run"] is None else f"{row['epochs_run']} ({row['best_epoch']})"
    if key == "train_seconds":
        return f"{row['train_seconds']:.0f}"
    if key == "scoring_texts_per_s":
        return f"{row['scoring_texts_per_s']:,}"
    return row[key]


def training_seconds(experiment: str, execution: str) -> dict[str, float]:
    """Per variant, the seconds its training took in this run (its MLflow run's train_seconds)."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.`{EXECUTION_TAG}` = '{execution}'",
        output_format="list",
    )
    return {
        run.data.tags[VARIANT_TAG]: run.data.metrics["train_seconds"]
        for run in runs
        if "train_seconds" in run.data.metrics
    }


def collect(work: Path, speeds_texts: list[str], seconds: dict[str, float]) -> list[dict]:
    rows = read_json(work / "reports/evaluate/leaderboard.json")
    for row in rows:
        if row["type"] == ensemble.TYPE:
            members = bundle.read_meta(work / "ensemble")["members"]
            row |= {"epochs_run": None, "train_seconds": sum(seconds[m] for m in members)}
            row.update(scoring_speed(work / "ensemble", speeds_texts))
            continue
        trained = read_json(work / "reports/train" / row["variant"] / "metrics.json")
        row |= {"epochs_run": trained["epochs_run"], "train_seconds": seconds[row["variant"]]}
        row.update(scoring_speed(work / "models" / row["variant"], speeds_texts))
    return rows


@click.command("benchmark")
@click.option(
    "--nsmc-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Local copy of the NSMC files; without it the official files are downloaded.",
)
@click.option(
    "--overrides",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default="benchmarks/nsmc-params.yaml",
    show_default=True,
    help="params.yaml overrides for the benchmark.",
)
@path_option(
    "--out-dir",
    "Where nsmc.json, nsmc.md, the run's merged params and dvc.lock, and the run folder go.",
)
@click.option("--device", default="CPU", show_default=True, help="A label for the results.")
def command(nsmc_dir, overrides, out_dir, device):
    """Run the full pipeline on NSMC in its own experiment and write a results table."""
    from pipeline.tracking import configure

    root = repo_root()
    commit = git_commit(root) or "unknown"  # of the snapshot, before any later commit
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = (out_dir / "runs" / stamp).resolve()
    copy_project(root, work)
    params = benchmark_params(root / "params.yaml", overrides, nsmc_dir)
    (work / "params.yaml").write_text(
        yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    execution = f"nsmc-benchmark-{stamp}"
    env = {
        **os.environ,
        EXECUTION_ENV: execution,
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{root / 'mlflow.db'}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    started = time.perf_counter()
    result = subprocess.run(["dvc", "repro"], cwd=work, env=env)
    repro_seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise PipelineError(f"dvc repro failed in {work}")
    configure(root)
    test = read_jsonl(work / "data/split/test.jsonl")
    texts = [r["text"] for r in test[:5000]]
    seconds = training_seconds(params["train"]["experiment"], execution)
    report = {
        "date": dt.date.today().isoformat(),
        "commit": commit,
        "machine": machine(),
        "device": device,
        "repro_seconds": round(repro_seconds, 1),
        "test_size": len(test),
        "tokenizer_reviews_per_s": tokenizer_speed(
            params["tokenize"]["tokenizers"], [r["text"] for r in test[:20000]]
        ),
        "variants": collect(work, texts, seconds),
        "run_folder": str(work),
    }
    write_json(out_dir / "nsmc.json", report)
    shutil.copyfile(work / "params.yaml", out_dir / "nsmc.params.yaml")
    shutil.copyfile(work / "dvc.lock", out_dir / "nsmc.dvc.lock")
    table = results_table(report)
    (out_dir / "nsmc.md").write_text(table, encoding="utf-8")
    click.echo(table)
