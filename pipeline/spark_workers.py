"""score-spark inside Spark's Python workers: each partition's texts scored in batches by the
same code as `predict`. Each worker process loads the model once and keeps it for every later
partition it scores (`_SCORERS`; Spark reuses its Python workers, spark.python.worker.reuse)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from pipeline.contract import TEXT_COLUMN

RESULT_TYPE = "label long, sentiment string, probability double"
LOAD_MESSAGE = "score-spark: model loaded in Python worker"

# The scorer of the model archive this Python worker process scores with, loaded on its first
# partition and kept for every later one.
_SCORERS: dict[str, Callable[[list[str]], pd.DataFrame]] = {}


def limit_threads(bundle, threads: int) -> None:
    """Rebuild a loaded bundle's Kiwi tokenizers with `threads` worker threads."""
    from dataclasses import replace

    from pipeline.tokenizers import KiwiTokenizer

    for name, tokenizer in bundle.tokenizers.items():
        if isinstance(tokenizer, KiwiTokenizer) and tokenizer.cfg.num_workers != threads:
            bundle.tokenizers[name] = KiwiTokenizer(replace(tokenizer.cfg, num_workers=threads))


def load_scorer(kind: str, folder: Path, threads: int) -> Callable[[list[str]], pd.DataFrame]:
    """texts -> DataFrame(label, sentiment, probability), the way `predict` scores them.
    threads > 0: Kiwi and NumPy's BLAS use that many threads."""
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    if kind == "bundle":
        from pipeline.serving import Bundle

        bundle = Bundle(folder)
        if threads > 0:
            limit_threads(bundle, threads)
        return bundle.predict
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    loaded = mlflow.pyfunc.load_model(str(folder))
    with contextlib.suppress(MlflowException):  # only this project's models have a bundle
        bundle = getattr(loaded.unwrap_python_model(), "bundle", None)
        if bundle is not None and threads > 0:
            limit_threads(bundle, threads)
    return lambda texts: loaded.predict(pd.DataFrame({TEXT_COLUMN: texts}))


def load_message(seconds: float) -> str:
    """The line a worker prints when it has loaded the model: its pid, the time it took, its
    memory and threads then (what one executor core needs)."""
    import psutil

    process = psutil.Process()
    resident = process.memory_info().rss / 2**20
    return (
        f"{LOAD_MESSAGE} {process.pid} ({seconds:.1f} s, {resident:.0f} MiB resident, "
        f"{process.num_threads()} threads)"
    )


def worker_scorer(archive: str, kind: str, threads: int) -> Callable[[list[str]], pd.DataFrame]:
    """This worker process's scorer for the model shipped as `archive`, loaded on first use."""
    if archive not in _SCORERS:
        from pyspark import SparkFiles

        _SCORERS.clear()  # one model per worker: a later job's model replaces an earlier one

        started = time.perf_counter()
        target = Path(SparkFiles.getRootDirectory()) / f"{Path(archive).stem}.{os.getpid()}"
        with zipfile.ZipFile(SparkFiles.get(archive)) as zf:
            top = zf.namelist()[0].split("/")[0]
            zf.extractall(target)
        _SCORERS[archive] = load_scorer(kind, target / top, threads)
        print(load_message(time.perf_counter() - started), file=sys.stderr, flush=True)
    return _SCORERS[archive]


def score_batches(
    archive: str, kind: str, threads: int, batches: Iterator[pd.Series]
) -> Iterator[pd.DataFrame]:
    scorer = worker_scorer(archive, kind, threads)
    for texts in batches:
        predictions = scorer(texts.tolist()).reset_index(drop=True)
        yield pd.DataFrame(
            {
                "label": predictions["label"].astype("int64"),
                "sentiment": predictions["sentiment"].astype(object),
                "probability": predictions["probability"].astype("float64"),
            }
        )
