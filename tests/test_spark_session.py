"""score-spark's session: a failed Spark call as one line, and PySpark's pandas-3 warning hidden
(the sessions themselves start in tests/test_score_spark.py)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from pipeline.spark_session import PANDAS_WARNING, hide_pandas_warning, one_line


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
