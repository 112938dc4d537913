import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from pipeline.pyfunc import SIGNATURE, texts_from


def test_accepts_frames_series_and_lists():
    assert texts_from(pd.DataFrame({"text": ["가", "나"]})) == ["가", "나"]
    assert texts_from(pd.Series(["가"])) == ["가"]
    assert texts_from(["가"]) == ["가"]


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (pd.DataFrame({"review": ["가"]}), "missing column 'text'; got review"),
        (pd.DataFrame({"text": ["가", None]}), "row 1: (None|nan)"),
        (pd.DataFrame({"text": [3]}), "row 0: 3"),
        ("가", "expected a table"),
    ],
)
def test_bad_input_is_a_400_error(model_input, message):
    with pytest.raises(MlflowException, match=message) as error:
        texts_from(model_input)
    assert error.value.get_http_status_code() == 400


def test_signature():
    assert SIGNATURE.inputs.input_names() == ["text"]
    assert SIGNATURE.outputs.input_names() == ["label", "sentiment", "probability"]


def test_one_row_holding_a_list_is_a_batch():
    assert texts_from(pd.DataFrame({"text": [["가", "나"]]})) == ["가", "나"]
    with pytest.raises(MlflowException, match="row 1"):
        texts_from(pd.DataFrame({"text": [["가", None]]}))
