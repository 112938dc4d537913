"""The Spark session of score-spark and of the data stages' spark engine, and what it reports: a
SparkSession for a master (local mode on loopback, with this Python for the workers), this
checkout's code shipped to the executors, and a failed Spark call as one line."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

PYSPARK_MISSING = "Spark needs pyspark: pip install -e '.[spark]'"
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # hdfs://, s3a://, file:/ (not a plain path)
# PySpark 4.3 checks the pandas version each time it makes a pandas UDF or converts to or from
# pandas, and warns that it "does not yet fully support pandas >= 3.0.0". The cause is the pin:
# pandas 3 is what the rest of the pipeline (MLflow, the stages' outputs) runs on, so PySpark
# is told to be quiet instead; the tests check score-spark's results against `predict`'s on
# 20,000 NSMC reviews. Python workers do not warn: only the driver makes UDFs.
PANDAS_WARNING = "PySpark does not yet fully support pandas"


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


def hide_pandas_warning() -> None:
    """Ignore PySpark's pandas-version warning (PANDAS_WARNING says why) from here on. Called
    before each PySpark call that checks, as whoever restores the warning filters (pytest does,
    after each test) brings it back."""
    warnings.filterwarnings("ignore", PANDAS_WARNING, FutureWarning, module="pyspark")


@dataclass(frozen=True)
class EngineConfig:
    """Where the data stages run (params 'engine', checked by pipeline/schema.py): `local` in
    this process, or `spark` on `master` (None: spark-submit's, else local[*]) with `conf`."""

    name: str
    master: str | None
    partitions: int | None
    conf: dict[str, str]

    @classmethod
    def from_params(cls, section: dict) -> EngineConfig:
        conf = {key: _conf_value(value) for key, value in section["conf"].items()}
        return cls(section["name"], section["master"], section["partitions"], conf)


def _conf_value(value) -> str:
    """A Spark setting as Spark reads it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder.parent))
    return archive


def ship_package(spark, staging: Path) -> None:
    """Make the executors' Python workers import this checkout's `pipeline` package."""
    import pipeline

    code = zip_folder(
        Path(pipeline.__file__).parent, staging / f"pipeline-{uuid.uuid4().hex[:12]}.zip"
    )
    spark.sparkContext.addPyFile(str(code))


def start_spark(master: str | None, conf: dict[str, str], app: str = "score-spark"):
    """A SparkSession: `master` if given, else spark-submit's, else local[*]."""
    hide_pandas_warning()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PipelineError(PYSPARK_MISSING) from None
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        master = "local[*]"
    if master and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # driver and UI on loopback only
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this Python
    builder = SparkSession.builder.appName(f"korean-sentiment {app}")
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


def is_uri(location: str | Path) -> bool:
    """A URI such as hdfs://, s3a:// or file:/, not a plain file system path."""
    return isinstance(location, str) and URI.match(location) is not None


def uri_of(location: str | Path) -> str:
    """What Spark reads: a URI as given, a local path as an absolute file: URI."""
    return str(location) if is_uri(location) else Path(location).resolve().as_uri()


@contextlib.contextmanager
def spark_errors() -> Iterator[None]:
    """A failed Spark job as one PipelineError line, without Spark's stack traces."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        raise PipelineError(f"Spark job failed: {spark_failure(exc)}") from None


@contextlib.contextmanager
def engine_session(engine: EngineConfig, stage: str) -> Iterator:
    """A SparkSession for a data stage on the engine's master, with this checkout's code on the
    executors; stopped afterwards."""
    conf = {"spark.ui.showConsoleProgress": "false", **engine.conf}
    spark = start_spark(engine.master, conf, stage)
    try:
        with tempfile.TemporaryDirectory(prefix=f"spark-{stage}-") as staging:
            ship_package(spark, Path(staging))
            yield spark
    finally:
        spark.stop()
