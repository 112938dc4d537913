"""MLflow plumbing for the command layer: where runs go, what they carry, how they end.

The store: `sqlite:///<repo root>/mlflow.db` with artifacts in `<repo root>/mlartifacts`, unless
MLFLOW_TRACKING_URI names another (a tracking server keeps its own artifact store). The root
comes from DVC_ROOT inside a stage, so `dvc exp run --temp/--queue` logs into the user's
repository, not into DVC's temporary copy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import psutil
from mlflow import MlflowClient

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.project import git_commit
from pipeline.tracking_uri import check_tracking_uri, may_hold_running_runs, store_uri

EXECUTION_ENV = "PIPELINE_EXECUTION_ID"
EXECUTION_TAG = "pipeline.execution_id"
VARIANT_TAG = "variant"
DATA_DIGEST_TAG = "data.digest"
MODEL_DIGEST_TAG = "model.digest"  # pipeline/bundle.py digest() of the model the run trained
HOST_TAG, PID_TAG, STARTED_TAG = "pipeline.host", "pipeline.pid", "pipeline.process_started"
DVC_EXP_TAGS = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}
# The MLflow UI opens an experiment of this kind on its runs list, not the GenAI overview.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
WATCH_SECONDS = 0.5


class Terminated(KeyboardInterrupt):
    """SIGTERM, or the end of the `dvc` process that started us: the run ends KILLED."""


def store_is_local() -> bool:
    return mlflow.get_tracking_uri().split(":", 1)[0] in ("sqlite", "file")


def configure(root: Path) -> None:
    """SQLite store at the root unless MLFLOW_TRACKING_URI names another (e.g. a server)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    else:  # unreachable or unknown: one line naming the URI, before any run starts
        check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def experiment_id(name: str, root: Path) -> str:
    """The experiment's id, created on first use with its artifacts under the repo root (a
    server chooses its own artifact store)."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is None:
        location = (root / "mlartifacts").as_uri() if store_is_local() else None
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # made by another stage
            mlflow.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
        existing = mlflow.get_experiment_by_name(name)
    if existing.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        MlflowClient().set_experiment_tag(existing.experiment_id, *EXPERIMENT_KIND)
    return existing.experiment_id


def execution_id() -> str:
    """One id for all stages of one `dvc repro`: the env var, else derived from the dvc process."""
    if os.environ.get(EXECUTION_ENV):
        return os.environ[EXECUTION_ENV]
    dvc = dvc_process()
    if dvc is not None:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dvc.pid}:{dvc.create_time()}"))
    return str(uuid.uuid4())


def dvc_process() -> psutil.Process | None:
    """The `dvc` process this command runs under, if any."""
    for process in psutil.Process().parents():
        with contextlib.suppress(psutil.Error):
            if any(Path(arg).name == "dvc" for arg in process.cmdline()[:3]):
                return process
    return None


def run_name(variant: str) -> str:
    """The variant, and under `dvc exp run` the DVC experiment's name: `bilstm@exp-1a2b3`."""
    exp = os.environ.get("DVC_EXP_NAME")
    return f"{variant}@{exp}" if exp else variant


def run_tags(variant: str, data_digest: str) -> dict[str, str]:
    """Tags every run carries: variant, the `dvc repro` it belongs to, data, commit, the DVC
    experiment (under `dvc exp run`), and the process that owns it (to find it if it dies)."""
    me = psutil.Process()
    tags = {
        VARIANT_TAG: variant,
        EXECUTION_TAG: execution_id(),
        DATA_DIGEST_TAG: data_digest,
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        STARTED_TAG: repr(me.create_time()),
    }
    tags |= {tag: os.environ[env] for env, tag in DVC_EXP_TAGS.items() if os.environ.get(env)}
    commit = git_commit(Path.cwd())
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def reap_dead_runs(experiment: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs of this host whose process is gone (kill -9, power loss),
    in `experiment` or, without one, in every experiment of the store; runs started elsewhere
    are left alone. Returns their ids."""
    client = MlflowClient()
    experiments = (
        [experiment] if experiment else [e.experiment_id for e in client.search_experiments()]
    )
    running = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'",
    )
    reaped = []
    for run in running:
        if not _process_alive(run.data.tags.get(PID_TAG), run.data.tags.get(STARTED_TAG)):
            client.set_tag(run.info.run_id, "pipeline.end_reason", "its process was gone")
            client.set_terminated(run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
    return reaped


def reap_project_store(root: Path) -> list[str]:
    """reap_dead_runs in every experiment of the project's store (MLFLOW_TRACKING_URI, else
    <root>/mlflow.db): what `python -m pipeline reap` (an always-changed DVC stage), `serve` and
    the registry commands call, so that a run whose process died is found even when DVC
    restores its stage from the run cache. A local store that holds no RUNNING run (or does not
    exist: nothing is created) is read without MLflow."""
    if not may_hold_running_runs(store_uri(root)):
        return []
    configure(root)
    return reap_dead_runs()


def _process_alive(pid: str | None, started: str | None) -> bool:
    if not pid or not started:
        return True  # not ours to judge
    try:
        return repr(psutil.Process(int(pid)).create_time()) == started
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def tracked_run(experiment: str, name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """A run that ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C, SIGTERM, or when
    the `dvc` process that started this command goes away (`dvc repro` killed)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    watch = _watch(dvc_process())
    run = _start_run(experiment, name, tags)
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
        watch.set()
        signal.signal(signal.SIGTERM, previous)


def _start_run(experiment: str, name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
    """Under `mlflow run`, MLFLOW_RUN_ID names the run the project run created: log into it (in
    whatever experiment `mlflow run` chose: the project's with `--experiment-name`), so no empty
    run is left behind."""
    resumed = os.environ.pop("MLFLOW_RUN_ID", None)
    if not resumed:
        return mlflow.start_run(experiment_id=experiment, run_name=name, tags=tags)
    if MlflowClient().get_run(resumed).info.experiment_id != experiment:
        print(
            f"note: logging into run {resumed} that `mlflow run` made outside the project's "
            "experiment; `mlflow run ... --experiment-name <train.experiment>` puts it there",
            file=sys.stderr,
        )
    return mlflow.start_run(run_id=resumed, tags={**tags, "mlflow.runName": name})


def _raise_terminated(signum, frame):
    raise Terminated()


def _watch(parent: psutil.Process | None) -> threading.Event:
    """Send ourselves SIGTERM once `parent` has ended; set the returned event to stop watching.

    DVC does not pass SIGTERM on to the stage it runs: without this, a killed `dvc repro`
    leaves its training process running, writing outputs after DVC has returned."""
    stop = threading.Event()

    def watch():
        while not stop.wait(WATCH_SECONDS):
            if not parent.is_running():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    if parent is not None:
        threading.Thread(target=watch, name="watch-dvc", daemon=True).start()
    return stop


def requirements() -> list[str]:
    """Pinned requirements of the served model, taken from this environment."""
    from importlib.metadata import version

    names = (  # the served model scores LSTMs in NumPy: no TensorFlow
        "mlflow",
        "kiwipiepy",
        "kiwipiepy-model",
        "scikit-learn",
        "numpy",
        "pandas",
        "scipy",
        "threadpoolctl",
        "h5py",
        "pyyaml",
    )
    return [f"{name}=={version(name)}" for name in names]


def log_pyfunc(bundle_dir: Path):
    """Log a bundle as the run's `model`: a pyfunc model from code (no pickle)."""
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


def find_variant_run(experiment: str, variant: str, model_digest: str) -> mlflow.entities.Run:
    """The newest finished run of `variant` that trained exactly this model."""
    runs = MlflowClient().search_runs(
        [experiment],
        f"tags.{VARIANT_TAG} = '{variant}' and tags.`{MODEL_DIGEST_TAG}` = '{model_digest}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise PipelineError(
            f"no finished MLflow run of variant {variant!r} that trained the model now in its "
            f"output folder, in {mlflow.get_tracking_uri()}; point MLFLOW_TRACKING_URI at the "
            f"store that trained it, or retrain it: dvc repro --force train@{variant}"
        )
    return runs[0]


def logged_model_uri(run: mlflow.entities.Run) -> str:
    models = MlflowClient().search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    if not models:
        raise PipelineError(f"MLflow run {run.info.run_id} has no logged model")
    return f"models:/{models[0].model_id}"


class VariantLogger:
    """What one training run logs besides its params: data, epochs, the model."""

    def log_inputs(self, data_dir: Path, digests: dict[str, str]) -> None:
        """Each split (name -> sha256) as an MLflow dataset: its file, digest and columns, read
        from nothing but the digest, so that logging it costs nothing however large it is."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.types import ColSpec, Schema

        schema = Schema([ColSpec("string", "text"), ColSpec("long", "label")])
        for name, digest in digests.items():
            source = resolve_dataset_source(str((data_dir / f"{name}.jsonl").resolve()))
            dataset = MetaDataset(source, name=name, digest=digest[:16], schema=schema)
            mlflow.log_input(dataset, context="training" if name == "train" else name)

    @staticmethod
    def log_epoch(row: dict[str, float], epoch: int) -> None:
        """One epoch's train/validation loss and accuracy under `epoch/<name>`, step = epoch:
        curves of their own, apart from the summary metrics `evaluate` logs (val_accuracy...)."""
        mlflow.log_metrics({f"epoch/{name}": value for name, value in row.items()}, step=epoch)

    def log_result(self, trained, model_dir: Path, model_digest: str):
        """Summary of training, the figure, the model summary and Keras file, the pyfunc model."""
        from pipeline.plots import learning_curves_figure

        mlflow.log_metrics(
            {
                "train_seconds": round(trained.seconds, 2),
                "best_epoch": trained.best["epoch"],
                "epochs_run": len(trained.history),
            }
        )
        mlflow.set_tag(MODEL_DIGEST_TAG, model_digest)
        if "vocab_size" in trained.meta:
            mlflow.log_param("vocab_size_actual", trained.meta["vocab_size"])
        mlflow.log_figure(
            learning_curves_figure(trained.history, trained.meta["variant"]), "learning_curves.png"
        )
        if trained.summary is not None:
            mlflow.log_text(trained.summary, "model_summary.txt")
        if (model_dir / bundle.KERAS_FILE).is_file():
            mlflow.log_artifact(str(model_dir / bundle.KERAS_FILE), "keras")
        return log_pyfunc(model_dir)


@contextlib.contextmanager
def variant_run(
    experiment_name: str, root: Path, name: str, tags: dict[str, str], params: dict
) -> Iterator[VariantLogger]:
    """The MLflow run of one variant, params logged up front; first, runs of this host whose
    process died are marked KILLED."""
    configure(root)
    experiment = experiment_id(experiment_name, root)
    reap_dead_runs(experiment)
    with tracked_run(experiment, name, tags):
        mlflow.log_params(params)
        yield VariantLogger()


def publish_variant_run(
    experiment: str,
    variant: str,
    folder: Path,
    tags: dict[str, str],
    params: dict,
    history: list[dict],
    metrics: dict,
) -> str:
    """Log a run for a model trained elsewhere (DVC's outputs): its params, per-epoch curves,
    training metrics and the model, nothing retrained. Returns the run id."""
    with tracked_run(experiment, run_name(variant), tags) as run:
        mlflow.log_params(params)
        for row in history:
            values = {k: float(v) for k, v in row.items() if k != "epoch"}
            VariantLogger.log_epoch(values, int(row["epoch"]))
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        log_pyfunc(folder)
    return run.info.run_id
