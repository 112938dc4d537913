"""`score-spark`: score a table of texts on Apache Spark with a registered model or a bundle.

Spark reads the input (CSV, TSV, Parquet or one text per line, from any path or URI it reads),
splits it into partitions and schedules them; each partition's texts go through the same
scoring code as `predict`, in batches, inside Spark's Python workers:

- a bundle folder (a dir with bundle.json) is scored with `Bundle.predict`;
- anything else is an MLflow model URI, downloaded once on the driver and scored with
  `mlflow.pyfunc.load_model(...).predict`, as `predict` does.

The model folder travels to the executors with the job (SparkContext.addFile), so executors
need neither the tracking server nor the registry. Each Python worker process loads the model
once and keeps it for every later partition it scores (`_SCORERS`; Spark reuses its Python
workers, spark.python.worker.reuse). `mlflow.pyfunc.spark_udf(env_manager="local")` was not
used because, in local mode, it loads the model once per task (partition), not once per worker.

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

import contextlib
import os
import re
import tempfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import click
import pandas as pd

from pipeline.bundle import BUNDLE_FILE, is_bundle
from pipeline.contract import TEXT_COLUMN
from pipeline.errors import PipelineError

FORMATS = ("csv", "tsv", "parquet", "text")
OUTPUT_FORMATS = ("parquet", "csv")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "text", ".parquet": "parquet"}
PREDICTION_COLUMNS = ("label", "sentiment", "probability", "error")
RENAMED_PREFIX = "input_"
RESULT_TYPE = "label long, sentiment string, probability double"
NULL_TEXT = "text is null"
MALFORMED_ROW = "malformed row (too few or too many fields)"
MALFORMED = "__malformed"  # Spark's corrupt-record column of a CSV/TSV input
LOAD_MESSAGE = "score-spark: model loaded in Python worker"
PYSPARK_MISSING = "score-spark needs pyspark: pip install -e '.[spark]'"

# The scorer of the model archive this Python worker process scores with, loaded on its first
# partition and kept for every later one.
_SCORERS: dict[str, Callable[[list[str]], pd.DataFrame]] = {}


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


def renamed_columns(columns: list[str]) -> dict[str, str]:
    """Input columns whose names the predictions take, each mapped to `input_<name>`."""
    clashes = {name: f"{RENAMED_PREFIX}{name}" for name in columns if name in PREDICTION_COLUMNS}
    taken = set(columns) & set(clashes.values())
    if taken:
        raise PipelineError(
            f"input columns {', '.join(sorted(clashes))} would be renamed to "
            f"{', '.join(sorted(taken))}, which the input already has; rename them first"
        )
    return clashes


def type_error(type_name: str) -> str | None:
    """The per-row error for a text column of this Spark type (None: a string column)."""
    return None if type_name == "string" else f"text is not a string ({type_name})"


def one_line(text: str) -> str:
    """An error message as one short line: the last Python error in it when it holds a Python
    worker's traceback, else its first line."""
    python_errors = re.findall(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception): .+)$", text, re.M)
    if python_errors:
        return python_errors[-1][:300]
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")[:300]


def spark_failure(exc: Exception) -> str:
    """What went wrong in a failed Spark call: the innermost cause of the JVM exception (the
    Python worker's error, an unreadable file), without Spark's stack traces."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        return one_line(str(exc))
    while java.getCause() is not None:
        java = java.getCause()
    return one_line(str(java.getMessage() or java.toString()))


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder.parent))
    return archive


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


# ---- in the Python workers ------------------------------------------------------------------


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


# ---- on the driver ------------------------------------------------------------------------


def start_spark(master: str | None, conf: dict[str, str]):
    """A SparkSession: `master` if given, else spark-submit's, else local[*]."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PipelineError(PYSPARK_MISSING) from None
    # PySpark 4.3 warns that it does not fully support pandas 3; the tests check the results.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        master = "local[*]"
    if master and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # driver and UI on loopback only
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this Python
    builder = SparkSession.builder.appName("korean-sentiment score-spark")
    if master:
        builder = builder.master(master)
    for key, value in {"spark.ui.showConsoleProgress": "true", **conf}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # PySparkRuntimeError: the JVM did not start (no Java, bad conf)
        raise PipelineError(
            f"could not start Spark ({one_line(str(exc))}); it needs Java 17 or later "
            "(java on PATH or JAVA_HOME)"
        ) from None
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_input(spark, path: str, fmt: str, text_column: str):
    """The input with one more column, MALFORMED: the raw line of a CSV/TSV row that has too few
    or too many fields (else null). An empty CSV/TSV field is an empty text, as in `predict`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    if fmt in ("parquet", "text"):
        frame = spark.read.parquet(path) if fmt == "parquet" else spark.read.text(path)
        if fmt == "text":
            frame = frame.withColumnRenamed("value", text_column)
        frame = frame.withColumn(MALFORMED, F.lit(None).cast("string"))
    else:
        options = {"header": "true", "encoding": "UTF-8", "mode": "PERMISSIVE"}
        if fmt == "csv":
            options |= {"multiLine": "true", "quote": '"', "escape": '"'}
        else:  # TSV as `predict` reads it: tabs, no quoting
            options |= {"sep": "\t", "quote": ""}
        header = spark.read.options(**options).csv(path).columns
        schema = StructType([StructField(name, StringType()) for name in [*header, MALFORMED]])
        frame = (
            spark.read.options(**options, columnNameOfCorruptRecord=MALFORMED)
            .schema(schema)
            .csv(path)
        )
        if text_column in header:
            text = F.col(f"`{text_column}`")
            fields_ok = F.col(MALFORMED).isNull()
            frame = frame.withColumn(text_column, F.when(fields_ok, F.coalesce(text, F.lit(""))))
    if text_column not in frame.columns:
        found = [name for name in frame.columns if name != MALFORMED]
        raise PipelineError(
            f"{path}: no column {text_column!r}; found {', '.join(found) or 'none'}"
        )
    return frame


def with_predictions(frame, text_column: str, score):
    """The input's columns (clashing names prefixed) plus the predictions and the error."""
    from pyspark.sql import functions as F

    text = F.col(f"`{text_column}`")
    wrong_type = type_error(frame.schema[text_column].dataType.simpleString())
    error = F.when(F.col(MALFORMED).isNotNull(), F.lit(MALFORMED_ROW)).when(
        text.isNull(), F.lit(NULL_TEXT)
    )
    if wrong_type:
        error = error.otherwise(F.lit(wrong_type))
        scored_text = F.lit("")
    else:
        scored_text = F.when(text.isNull(), F.lit("")).otherwise(text)
    columns = [name for name in frame.columns if name != MALFORMED]
    renamed = renamed_columns(columns)
    inputs = [F.col(f"`{name}`").alias(renamed.get(name, name)) for name in columns]
    staged = frame.select(*inputs, error.alias("__error"), score(scored_text).alias("__scored"))
    ok = F.col("__error").isNull()
    return staged.select(
        *[F.col(f"`{renamed.get(name, name)}`") for name in columns],
        F.when(ok, F.col("__scored.label")).otherwise(F.lit(-1)).alias("label"),
        F.when(ok, F.col("__scored.sentiment")).otherwise(F.lit("unknown")).alias("sentiment"),
        F.when(ok, F.col("__scored.probability")).alias("probability"),
        F.col("__error").alias("error"),
    )


def partitioned(frame, partitions: int | None, default_parallelism: int):
    """`partitions` partitions (else at least one per core), in input order: a row number
    range-partitions the rows, so part files in name order hold the input's rows in order."""
    from pyspark.sql import functions as F

    wanted = partitions or (
        default_parallelism if frame.rdd.getNumPartitions() < default_parallelism else None
    )
    if wanted is None:
        return frame
    return (
        frame.withColumn("__row", F.monotonically_increasing_id())
        .repartitionByRange(wanted, "__row")
        .sortWithinPartitions("__row")
        .drop("__row")
    )


class HadoopPaths:
    """exists / delete / rename on any file system Spark writes to (local, HDFS, S3, ...)."""

    def __init__(self, spark, path: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._path(path))

    def delete(self, path: str) -> None:
        self.fs.delete(self._path(path), True)

    def rename(self, source: str, dest: str) -> None:
        if not self.fs.rename(self._path(source), self._path(dest)):
            raise PipelineError(f"could not rename {source} to {dest}")


def temporary_sibling(output: str) -> str:
    parent, _, name = output.rstrip("/").rpartition("/")
    hidden = f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    return f"{parent}/{hidden}" if parent or output.startswith("/") else hidden


def write_atomically(frame, output: str, fmt: str, overwrite: bool, paths: HadoopPaths) -> None:
    """Write to a hidden sibling folder; rename it to `output` only after the job succeeded."""
    if paths.exists(output) and not overwrite:
        raise PipelineError(f"output exists: {output} (pass --overwrite to replace it)")
    tmp = temporary_sibling(output)
    try:
        writer = frame.write.mode("error")
        if fmt == "csv":
            writer.options(
                header="true",
                quote='"',
                escape='"',
                ignoreLeadingWhiteSpace="false",
                ignoreTrailingWhiteSpace="false",
            ).csv(tmp)
        else:
            writer.parquet(tmp)
        if paths.exists(output):
            paths.delete(output)
        paths.rename(tmp, output)
    finally:
        if paths.exists(tmp):
            paths.delete(tmp)


def summary(spark, output: str, fmt: str) -> str:
    """Counts per sentiment and per error, read back from what was written."""
    if fmt == "csv":
        written = spark.read.options(header="true", escape='"', multiLine="true").csv(output)
    else:
        written = spark.read.parquet(output)
    counts = written.groupBy("sentiment", "error").count().collect()
    total = sum(row["count"] for row in counts)
    sentiments: dict[str, int] = {}
    errors: dict[str, int] = {}
    for row in counts:
        if row["error"]:
            errors[row["error"]] = errors.get(row["error"], 0) + row["count"]
        else:
            sentiments[row["sentiment"]] = sentiments.get(row["sentiment"], 0) + row["count"]
    line = f"scored {total} texts -> {output} ({dict(sorted(sentiments.items()))})"
    if errors:
        line += f"; rows with an error: {dict(sorted(errors.items()))}"
    return line


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

    import pipeline

    context = spark.sparkContext
    threads = job.task_threads
    if threads is None:
        threads = int(context.getConf().get("spark.task.cpus", "1"))
    archive = zip_folder(folder, staging / f"model-{uuid.uuid4().hex[:12]}.zip")
    code = zip_folder(
        Path(pipeline.__file__).parent, staging / f"pipeline-{uuid.uuid4().hex[:12]}.zip"
    )
    context.addFile(str(archive))
    context.addPyFile(str(code))  # the workers import this checkout's pipeline package

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
