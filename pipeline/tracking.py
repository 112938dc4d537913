"""MLflow plumbing for the command layer: where runs go, how they end, what they are tagged with."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import psutil

from pipeline.project import git_commit, repo_root
from pipeline.train import epoch_metrics

EXECUTION_ENV = "PIPELINE_EXECUTION_ID"
EXECUTION_TAG = "pipeline.execution_id"
VARIANT_TAG = "variant"


class Terminated(KeyboardInterrupt):
    """SIGTERM, treated like Ctrl-C so that the run ends as KILLED."""


def configure(root: Path) -> None:
    """SQLite store at the root unless MLFLOW_TRACKING_URI names another (e.g. a server)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    else:  # unreachable or unknown: one line naming the URI, before any run starts
        from pipeline.tracking_server import check_tracking_uri

        check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def experiment_id(name: str, root: Path) -> str:
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None if os.environ.get("MLFLOW_TRACKING_URI") else (root / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another stage process created it first.
        return mlflow.get_experiment_by_name(name).experiment_id


def execution_id() -> str:
    """One id for all stages of one `dvc repro`: the env var, else derived from the dvc process."""
    if os.environ.get(EXECUTION_ENV):
        return os.environ[EXECUTION_ENV]
    for process in psutil.Process().parents():
        with contextlib.suppress(psutil.Error):
            if any(Path(arg).name == "dvc" for arg in process.cmdline()[:3]):
                return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{process.pid}:{process.create_time()}"))
    return str(uuid.uuid4())


@contextlib.contextmanager
def tracked_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """A run that ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C or SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    # Under `mlflow run`, MLFLOW_RUN_ID names the run that project run created: log into it.
    resumed = os.environ.get("MLFLOW_RUN_ID")
    run = mlflow.start_run(
        run_id=resumed or None,
        experiment_id=None if resumed else experiment,
        run_name=None if resumed else run_name,
        tags={**tags, "mlflow.runName": run_name} if resumed else tags,
    )
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame):
    raise Terminated()


class EpochLogger(keras.callbacks.Callback):
    """Per-epoch train and validation loss and accuracy into the active run, step = epoch."""

    def on_epoch_end(self, epoch, logs=None):
        mlflow.log_metrics(epoch_metrics(logs or {}), step=epoch + 1)


def requirements() -> list[str]:
    """Pinned requirements of the served model, taken from this environment."""
    from importlib.metadata import version

    names = (
        "mlflow",
        "tensorflow",
        "keras",
        "kiwipiepy",
        "kiwipiepy-model",
        "scikit-learn",
        "numpy",
        "pandas",
        "scipy",
        "pyyaml",
    )
    return [f"{name}=={version(name)}" for name in names]


class VariantLogger:
    """Everything one training run logs besides the per-epoch curves."""

    def __init__(self, settings):
        self.settings = settings

    def callbacks(self) -> list:
        return [EpochLogger()]

    def log_inputs(
        self, splits: dict[str, list[dict]], data_dir: Path, digests: dict[str, str]
    ) -> None:
        import pandas as pd

        for name, records in splits.items():
            path = data_dir / f"{name}.jsonl"
            frame = pd.DataFrame(
                {"text": [r["text"] for r in records], "label": [r["label"] for r in records]}
            )
            with warnings.catch_warnings():
                # MLflow's hints about ambiguous local sources and integer columns are noise here.
                warnings.simplefilter("ignore", UserWarning)
                dataset = mlflow.data.from_pandas(
                    frame,
                    source=str(path.resolve()),
                    targets="label",
                    name=name,
                    digest=digests[name][:16],
                )
                mlflow.log_input(dataset, context="training" if name == "train" else name)

    def log_result(self, trained, metrics: dict, model_dir: Path) -> dict:
        from pipeline.plots import learning_curves_figure

        mlflow.log_metrics({k: metrics[k] for k in ("train_seconds", "best_epoch", "epochs_run")})
        if "vocab_size" in trained.meta:
            mlflow.log_param("vocab_size_actual", trained.meta["vocab_size"])
        mlflow.log_figure(
            learning_curves_figure(trained.history, self.settings.variant), "learning_curves.png"
        )
        if trained.keras_model is None:  # Keras variants logged their epochs as they went
            for row in trained.history:
                curves = {name: value for name, value in row.items() if name != "epoch"}
                mlflow.log_metrics(curves, step=row["epoch"])
        else:
            from pipeline.train import model_summary

            mlflow.log_text(model_summary(trained.keras_model), "model_summary.txt")
            mlflow.log_artifact(str(model_dir / "model.keras"), "keras")
        return run_record(mlflow.active_run(), log_pyfunc(model_dir))


def log_pyfunc(bundle_dir: Path):
    import pipeline
    from pipeline.pyfunc import INPUT_EXAMPLE, SIGNATURE

    package = Path(pipeline.__file__).parent
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(package / "pyfunc_entry.py"),
        artifacts={"bundle": str(bundle_dir)},
        code_paths=[str(package)],
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        pip_requirements=requirements(),
    )


def run_record(run: mlflow.ActiveRun, model_info) -> dict:
    """What `evaluate` needs of a variant's run (its run.json): ids and the logged model."""
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_id": model_info.model_id,
        "model_uri": model_info.model_uri,
    }


def run_tags(variant: str, data_digest: str) -> dict[str, str]:
    """Tags every variant's run carries: its name, the `dvc repro` it belongs to, data, commit."""
    tags = {VARIANT_TAG: variant, EXECUTION_TAG: execution_id(), "data.digest": data_digest}
    commit = git_commit(Path.cwd())
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@contextlib.contextmanager
def variant_run(settings, data_source: str, digests: dict[str, str]) -> Iterator[VariantLogger]:
    """The MLflow run of one variant: params and tags logged up front, status set at the end."""
    from pipeline.models import config_dict

    root = repo_root()
    configure(root)
    experiment = experiment_id(settings.experiment, root)
    with tracked_run(
        experiment, settings.variant, run_tags(settings.variant, digests["train"][:16])
    ):
        mlflow.log_params(
            {**config_dict(settings.config), "seed": settings.seed, "data_source": data_source}
        )
        yield VariantLogger(settings)


def ensemble_run(experiment: str, member_runs: dict[str, dict], bundle_dir: Path) -> dict:
    """Log the ensemble like a trained variant (params, tags, pyfunc model); its run.json dict."""
    from pipeline.ensemble import NAME, TYPE

    root = repo_root()
    configure(root)
    first = mlflow.MlflowClient().get_run(next(iter(member_runs.values()))["run_id"])
    tags = {
        **run_tags(NAME, first.data.tags.get("data.digest", "")),
        "member_run_ids": ",".join(run["run_id"] for run in member_runs.values()),
    }
    with tracked_run(experiment_id(experiment, root), NAME, tags) as run:
        mlflow.log_params(
            {"type": TYPE, "members": ",".join(member_runs), "combination": "mean log-odds"}
        )
        return run_record(run, log_pyfunc(bundle_dir))
