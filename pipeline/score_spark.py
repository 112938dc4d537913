"""`score-spark`: score a table of texts on Apache Spark with a registered model or a bundle.

Spark reads the input (CSV, TSV, Parquet or one text per line, from any path or URI it reads),
splits it into partitions and schedules them; each partition's texts go through the same
scoring code as `predict`, in batches, inside Spark's Python workers:

- a bundle folder (a dir with bundle.json) is scored with `Bundle.predict`;
- anything else is an MLflow model URI, downloaded once on the driver and scored with
  `mlflow.pyfunc.load_model(...).predict`, as `predict` does.

The model folder travels to the executors with the job (SparkContext.addFile), so executors
need neither the tracking server nor the registry. Each Python worker process loads the model
once and keeps it for every later partition it scores (pipeline/spark_workers.py; Spark reuses
its Python workers, spark.python.worker.reuse). `mlflow.pyfunc.spark_udf(env_manager="local")`
was not used because, in local mode, it loads the model once per task (partition), not once per
worker. The session is pipeline/spark_session.py's; reading, joining and writing the tables,
pipeline/spark_tables.py's. This module is the command: options, model staging, the job.

Rows: the input's columns plus `label`, `sentiment`, `probability` and `error`. A null text, a
value of a text column that is not a string column, and a CSV/TSV row with too few or too many
fields are per-row errors (`error` says which; label -1, sentiment "unknown", probability null);
an empty text is scored as serving does (label -1, "unknown", 0.5). The output is written to a
hidden sibling folder and renamed into place only when the whole job succeeded (docs/spark.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # `spark-submit pipeline/score_spark.py` runs this file as a script, which puts pipeline/
    # first on sys.path, where pipeline/tokenize.py would shadow the standard library's
    # tokenize. The project root takes its place, so that `pipeline` is this checkout.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import click
import pandas as pd

from pipeline.bundle import BUNDLE_FILE, is_bundle
from pipeline.contract import TEXT_COLUMN
from pipeline.errors import PipelineError
from pipeline.spark_session import (
    hide_pandas_warning,
    one_line,
    ship_package,
    spark_failure,
    start_spark,
    zip_folder,
)
from pipeline.spark_tables import (
    HadoopPaths,
    partitioned,
    read_input,
    summary,
    with_predictions,
    write_atomically,
)
from pipeline.spark_workers import RESULT_TYPE, score_batches

FORMATS = ("csv", "tsv", "parquet", "text")
OUTPUT_FORMATS = ("parquet", "csv")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "text", ".parquet": "parquet"}


def input_format(path: str, given: str | None) -> str:
    """The --format given, else the one the path's suffix names."""
    if given:
        return given
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise PipelineError(
            f"cannot tell the format of {path} from its name; pass --format ({', '.join(FORMATS)})"
        )
    return SUFFIX_FORMATS[suffix]


def is_local(path: str) -> bool:
    """A plain file system path, not a URI such as hdfs://, s3a:// or file:/."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path) is None


def stage_model(model: str, staging: Path) -> tuple[str, Path]:
    """("bundle", folder) for a bundle folder, else ("pyfunc", the MLflow model downloaded)."""
    if is_bundle(Path(model)):
        return "bundle", Path(model)
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model, dst_path=str(staging / "download")
        )
    except (MlflowException, OSError) as exc:
        raise PipelineError(f"cannot load model {model}: {one_line(str(exc))}") from None
    if not (Path(local) / "MLmodel").is_file():
        raise PipelineError(
            f"{model} is neither a bundle folder ({BUNDLE_FILE}) nor an MLflow model (MLmodel)"
        )
    return "pyfunc", Path(local)


def check_paths(model: str, job: Job) -> None:
    """Fail before Spark starts on what can be seen locally: a missing input or model path,
    an output that exists."""
    if is_local(job.input_path) and not Path(job.input_path).exists():
        raise PipelineError(f"input not found: {job.input_path}")
    if is_local(model) and not Path(model).exists():
        raise PipelineError(f"model not found: {model}")
    if is_local(job.output) and Path(job.output).exists() and not job.overwrite:
        raise PipelineError(f"output exists: {job.output} (pass --overwrite to replace it)")


def parse_conf(pairs: tuple[str, ...]) -> dict[str, str]:
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--conf takes KEY=VALUE, got {pair!r}")
        conf[key.strip()] = value
    return conf


@dataclass(frozen=True)
class Job:
    """What to score and where to write it (the command's options)."""

    input_path: str
    output: str
    text_column: str = TEXT_COLUMN
    fmt: str = "parquet"
    output_format: str = "parquet"
    partitions: int | None = None
    task_threads: int | None = None
    overwrite: bool = False


def score(spark, job: Job, kind: str, folder: Path, staging: Path) -> str:
    """Run the job on a SparkSession with a staged model; the summary line."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql.functions import pandas_udf

    hide_pandas_warning()  # pandas_udf checks the pandas version
    context = spark.sparkContext
    threads = job.task_threads
    if threads is None:
        threads = int(context.getConf().get("spark.task.cpus", "1"))
    archive = zip_folder(folder, staging / f"model-{uuid.uuid4().hex[:12]}.zip")
    context.addFile(str(archive))
    ship_package(spark, staging)

    @pandas_udf(RESULT_TYPE)
    def scored(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        yield from score_batches(archive.name, kind, threads, batches)

    try:
        frame = read_input(spark, job.input_path, job.fmt, job.text_column)
        frame = partitioned(frame, job.partitions, context.defaultParallelism)
        result = with_predictions(frame, job.text_column, scored)
        paths = HadoopPaths(spark, job.output)
        write_atomically(result, job.output, job.output_format, job.overwrite, paths)
        return summary(spark, job.output, job.output_format)
    except (PySparkException, Py4JJavaError) as exc:
        raise PipelineError(f"Spark job failed: {spark_failure(exc)}") from None


@click.command("score-spark")
@click.option(
    "--model",
    required=True,
    help="models:/<name>@champion, runs:/<id>/model, models:/<model-id>, or a bundle folder.",
)
@click.option("--input", "input_path", required=True, help="A file, folder or URI Spark can read.")
@click.option("--output", required=True, help="Output folder or URI (written whole or not at all).")
@click.option("--text-column", default=TEXT_COLUMN, show_default=True, help="Column to score.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Input format; default from the suffix: .csv, .tsv, .parquet, .txt (text: one per line).",
)
@click.option(
    "--master",
    default=None,
    help="Spark master URL, e.g. local[2]; default: spark-submit's --master, else local[*].",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Partitions to score; default: the input's, at least one per core Spark has.",
)
@click.option(
    "--output-format",
    type=click.Choice(OUTPUT_FORMATS),
    default="parquet",
    show_default=True,
)
@click.option(
    "--task-threads",
    type=click.IntRange(min=0),
    default=None,
    help="Threads the model uses inside each Spark task (Kiwi, NumPy); default "
    "spark.task.cpus (1); 0 keeps the model's own settings.",
)
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it exists.")
@click.option(
    "--conf", "conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable)."
)
def command(
    model,
    input_path,
    output,
    text_column,
    fmt,
    master,
    partitions,
    output_format,
    task_threads,
    overwrite,
    conf,
):
    """Score a table of texts on Spark; writes the input's columns plus the predictions."""
    job = Job(
        input_path,
        output,
        text_column,
        input_format(input_path, fmt),
        output_format,
        partitions,
        task_threads,
        overwrite,
    )
    settings = parse_conf(conf)
    check_paths(model, job)
    with tempfile.TemporaryDirectory(prefix="score-spark-") as staging:
        kind, folder = stage_model(model, Path(staging))
        spark = start_spark(master, settings)
        context = spark.sparkContext
        click.echo(f"score-spark: master {context.master}", err=True)
        if context.uiWebUrl:
            click.echo(f"score-spark: progress in the Spark UI, {context.uiWebUrl}", err=True)
        try:
            line = score(spark, job, kind, folder, Path(staging))
        finally:
            spark.stop()
    click.echo(line)


if __name__ == "__main__":
    from pipeline.cli import cli

    # The package's module, not this __main__ copy: Spark ships its functions by name.
    cli.main(args=["score-spark", *sys.argv[1:]], prog_name="spark-submit pipeline/score_spark.py")
