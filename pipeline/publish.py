"""`python -m pipeline publish`: log to the tracking store (a new team server, say) what DVC already
holds, and let the registry rules decide the champion; nothing is trained.

Each variant whose model the store does not know (by its `model.digest`) gets a run from DVC's
outputs: its params, per-epoch curves (reports/train/<variant>/history.csv), training metrics
and model. Then `evaluate` runs as the pipeline runs it: it scores every variant, logs the
evaluation and the ensemble, registers the best as `@challenger` and crowns it only under the
rules of docs/registry.md. Its outputs come out byte for byte as DVC has them (`dvc.lock` does
not change), so a teammate who ran `dvc pull` can publish too."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import click

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.io import read_json, sha256_file
from pipeline.options import params_option
from pipeline.project import repo_root
from pipeline.schema import load_section, variant_settings
from pipeline.variants import config_dict, variant_from_params


def _folder(flag: str, default: str, help: str):
    return click.option(
        flag, type=click.Path(path_type=Path), default=default, show_default=True, help=help
    )


def variant_params(train: dict, variant: str, data_report: Path) -> dict:
    """The params a training run of `variant` logs (train.py's), from params.yaml."""
    config = variant_settings(train, variant)
    return config_dict(variant_from_params(config)) | {
        "seed": train["seed"],
        "data_source": read_json(data_report)["source"],
    }


def read_history(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@click.command("publish")
@params_option
@_folder("--data-dir", "data/split", "Output folder of `split`.")
@_folder("--models-dir", "models", "One bundle per variant (outputs of `train`).")
@_folder("--runs-dir", "reports/train", "<variant>/metrics.json and history.csv.")
@_folder("--data-report", "reports/data.json", "The data report of `prepare`.")
@_folder("--ensemble-dir", "ensemble", "The ensemble's bundle (written again, identical).")
@_folder("--out-dir", "reports/evaluate", "evaluate's outputs (written again, identical).")
def command(params_path, data_dir, models_dir, runs_dir, data_report, ensemble_dir, out_dir):
    """Log DVC's trained models to the tracking store and register the champion; no training."""
    from pipeline import tracking

    train = load_section(params_path, "train")
    variants = list(train.get("variants") or {})
    missing = [v for v in variants if not bundle.is_bundle(models_dir / v)]
    if missing or not (data_dir / "train.jsonl").is_file():
        raise PipelineError(
            f"DVC's outputs are not here ({', '.join(missing) or data_dir}): `dvc pull` them, "
            "or `dvc repro` to train"
        )
    root = repo_root()
    tracking.configure(root)
    experiment = tracking.experiment_id(train["experiment"], root)
    data_digest = sha256_file(data_dir / "train.jsonl")[:16]
    for variant in variants:
        folder, reports = models_dir / variant, runs_dir / variant
        digest = bundle.digest(folder)
        try:
            run = tracking.find_variant_run(experiment, variant, digest)
            click.echo(f"{variant}: already in the store (run {run.info.run_id})")
            continue
        except PipelineError:
            pass
        tags = tracking.run_tags(variant, data_digest) | {
            tracking.MODEL_DIGEST_TAG: digest,
            "pipeline.published_from": "dvc outputs",
        }
        run_id = tracking.publish_variant_run(
            experiment,
            variant,
            folder,
            tags,
            variant_params(train, variant, data_report),
            read_history(reports / "history.csv"),
            read_json(reports / "metrics.json"),
        )
        click.echo(f"{variant}: published as run {run_id} (not retrained)")
    evaluate = [sys.executable, "-m", "pipeline", "evaluate", "--params", str(params_path)]
    evaluate += ["--data-dir", str(data_dir), "--models-dir", str(models_dir)]
    evaluate += ["--runs-dir", str(runs_dir), "--ensemble-dir", str(ensemble_dir)]
    evaluate += ["--out-dir", str(out_dir)]
    if subprocess.run(evaluate, check=False).returncode != 0:
        raise PipelineError("evaluate failed (above); the variants' runs are published")
