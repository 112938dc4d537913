"""score-spark's tables: the pure parts (renamed columns, the per-row type error, the hidden
output folder); the jobs that read and write tables are in tests/test_score_spark.py."""

from __future__ import annotations

import re

import pytest

from pipeline.errors import PipelineError
from pipeline.spark_tables import renamed_columns, temporary_sibling, type_error


def test_prediction_column_names_in_the_input_are_prefixed():
    assert renamed_columns(["id", "document", "label"]) == {"label": "input_label"}
    assert renamed_columns(["id", "text"]) == {}
    with pytest.raises(PipelineError, match="would be renamed to input_label"):
        renamed_columns(["label", "input_label"])


def test_a_non_string_text_column_is_a_row_error():
    assert type_error("string") is None
    assert type_error("bigint") == "text is not a string (bigint)"


def test_the_temporary_output_is_a_hidden_sibling():
    assert re.fullmatch(r"/data/\.scored\.tmp-[0-9a-f]{12}", temporary_sibling("/data/scored/"))
    assert re.fullmatch(r"\.scored\.tmp-[0-9a-f]{12}", temporary_sibling("scored"))
    assert temporary_sibling("s3a://b/out").startswith("s3a://b/.out.tmp-")
