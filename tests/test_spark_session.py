"""The Spark session's parts: a failed Spark call as one line, PySpark's pandas-3 warning hidden,
URIs, and the data stages' engine settings (the sessions themselves start in
tests/test_score_spark.py, tests/test_spark_cleaning.py and tests/test_spark_tokens.py)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from pipeline.spark_session import (
    PANDAS_WARNING,
    EngineConfig,
    hide_pandas_warning,
    is_uri,
    one_line,
    uri_of,
)


def test_one_line_keeps_the_last_python_error_of_a_traceback():
    traceback = (
        "An exception was thrown from the Python worker.\nTraceback (most recent call last):\n"
        "  File \"x.py\", line 1, in f\nKeyError: 'a'\n\nDuring handling...\n"
        "ValueError: File not found: model.keras\n"
    )
    assert one_line(traceback) == "ValueError: File not found: model.keras"
    assert one_line("\n[PATH_NOT_FOUND] Path does not exist: x.\nmore") == (
        "[PATH_NOT_FOUND] Path does not exist: x."
    )


def _pandas_udf() -> None:
    """A pandas UDF made as score() makes one (no session needed to make it)."""
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import LongType

    def lengths(texts: pd.Series) -> pd.Series:
        return texts.str.len()

    pandas_udf(lengths, LongType())


def test_pyspark_s_pandas_warning_is_hidden_and_nothing_else(recwarn):
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if int(pd.__version__.split(".")[0]) < 3:
        pytest.skip("PySpark warns only about pandas 3")
    _pandas_udf()
    assert [w for w in recwarn if PANDAS_WARNING in str(w.message)]
    recwarn.clear()
    hide_pandas_warning()
    _pandas_udf()
    message = f"{PANDAS_WARNING}, said elsewhere"
    warnings.warn(message, FutureWarning, stacklevel=1)  # from this module, not PySpark
    assert [str(w.message) for w in recwarn] == [message]


def test_uris_and_paths_as_spark_reads_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert all(map(is_uri, ["hdfs://nn/x.tsv", "s3a://b/x", "file:/tmp/x"]))
    assert not any(map(is_uri, ["data/x.tsv", "/tmp/x", tmp_path]))
    assert uri_of("s3a://b/x.tsv") == "s3a://b/x.tsv"
    assert uri_of("x.tsv") == (tmp_path / "x.tsv").as_uri()


def test_the_engine_s_settings_as_spark_takes_them():
    engine = EngineConfig.from_params(
        {
            "name": "spark",
            "master": "local[2]",
            "partitions": None,
            "conf": {"spark.ui.enabled": False, "spark.executor.cores": 4},
        }
    )
    assert engine.conf == {"spark.ui.enabled": "false", "spark.executor.cores": "4"}
    assert (engine.name, engine.master, engine.partitions) == ("spark", "local[2]", None)
