"""score-spark's Spark session and what it reports: a SparkSession for a master (local mode on
loopback, with this Python for the workers) and a failed Spark call as one line."""

from __future__ import annotations

import os
import re
import sys
import warnings

from pipeline.errors import PipelineError

PYSPARK_MISSING = "score-spark needs pyspark: pip install -e '.[spark]'"
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


def start_spark(master: str | None, conf: dict[str, str]):
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
