import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from pipeline.contract import MAX_ROWS_NAMED
from pipeline.pyfunc import SIGNATURE, InputError, enforced_texts, json_kind, texts_from


def test_accepts_frames_series_and_lists():
    assert texts_from(pd.DataFrame({"text": ["가", "나"]})) == ["가", "나"]
    assert texts_from(pd.Series(["가"])) == ["가"]
    assert texts_from(["가"]) == ["가"]
    assert texts_from([]) == []


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (pd.DataFrame({"SECRET": ["가"]}), "^missing column 'text'; the table has 1 other column$"),
        (pd.DataFrame({"text": ["SECRET", None]}), "^row 1: text must be a string, got null$"),
        (pd.DataFrame({"text": [3]}), "^row 0: text must be a string, got a number$"),
        (["SECRET", {"SECRET": 1}], "^row 1: text must be a string, got an object$"),
        (["SECRET", ["SECRET"]], "^row 1: text must be a string, got an array$"),
        ([True], "^row 0: text must be a string, got a boolean$"),
        (["SECRET", "\ud800"], r"^row 1: text holds a lone surrogate \(\\ud800-\\udfff\)"),
        ("SECRET", "^expected a table with a 'text' column or a list of texts, got a string$"),
    ],
)
def test_bad_input_is_a_400_error_that_does_not_echo_it(model_input, message):
    with pytest.raises(InputError, match=message) as error:
        texts_from(model_input)
    assert isinstance(error.value, MlflowException)
    assert error.value.get_http_status_code() == 400
    assert "SECRET" not in error.value.message


def test_a_lone_surrogate_is_found_before_pandas_sees_it():
    # pandas' string columns (Arrow) cannot hold "\ud800": texts_from must not build one first.
    with pytest.raises(InputError, match="row 0: text holds a lone surrogate"):
        texts_from(["\ud800"])
    with pytest.raises(InputError, match="row 2: text holds a lone surrogate"):
        texts_from(pd.Series(["a", "b", "\udfff"], dtype=object))


def test_the_message_names_a_few_rows_and_counts_the_rest():
    with pytest.raises(InputError) as error:
        texts_from([None] * (MAX_ROWS_NAMED + 3))
    assert error.value.message.count("got null") == MAX_ROWS_NAMED
    assert error.value.message.endswith("; and 3 more rows")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (float("nan"), "null"),
        (pd.NA, "null"),
        (np.bool_(True), "a boolean"),
        (np.int64(3), "a number"),
        (2.5, "a number"),
        (np.array([1]), "an array"),
        ((1,), "an array"),
        ({}, "an object"),
        ("x", "a string"),
        (b"x", "a bytes"),
    ],
)
def test_json_kind(value, kind):
    assert json_kind(value) == kind


def test_signature():
    assert SIGNATURE.inputs.input_names() == ["text"]
    assert SIGNATURE.outputs.input_names() == ["label", "sentiment", "probability"]


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (pd.DataFrame({"text": [["SECRET", "b", "c"]]}), "^row 0: .*got an array$"),
        (pd.DataFrame({"text": [{"SECRET": 1}]}), "^row 0: .*got an object$"),
        (pd.DataFrame({"text": ["a", [["SECRET"]]]}), "^row 1: .*got an array$"),
        (pd.DataFrame([["a", "b"]], columns=["text", "text"]), "'text' appears 2 times"),
        (pd.DataFrame({"text": ["a"], "SECRET": [1]}), "1 column besides 'text'"),
    ],
)
def test_a_row_is_one_text_and_the_table_only_the_text_column(model_input, message):
    with pytest.raises(InputError, match=message) as error:
        texts_from(model_input)
    assert "SECRET" not in error.value.message


def test_the_row_schema_enforcement_makes_of_a_column_is_unwrapped_once():
    # MLflow's enforcement turns {"text": ["가", "나"]} into one row holding the list.
    assert enforced_texts(pd.DataFrame({"text": [["가", "나"]]})) == ["가", "나"]
    assert enforced_texts(pd.DataFrame({"text": ["가", "나"]})) == ["가", "나"]
    with pytest.raises(InputError, match="row 1"):
        enforced_texts(pd.DataFrame({"text": [["가", None]]}))
    with pytest.raises(InputError, match="row 0: .*got an array"):
        enforced_texts(pd.DataFrame({"text": [[["가", "나"]]]}))


@pytest.mark.slow
def test_the_logged_model_answers_unknown_for_texts_without_features(tracking_uri, tmp_path):
    import mlflow

    from pipeline.tracking import log_pyfunc
    from pipeline.train import write_bundle
    from tests.helpers import fit_small

    write_bundle(fit_small(), tmp_path / "bundle")
    mlflow.set_experiment("unknown-texts")  # this store's own, not one a test before set
    with mlflow.start_run():
        uri = log_pyfunc(tmp_path / "bundle").model_uri
    texts = ["😀👍🎬🍿", "هذا الفيلم رائع جدا", "영화 좋다 w1"]
    out = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": texts}))
    assert out["label"].tolist()[:2] == [-1, -1] and out["label"].tolist()[2] == 1
    assert out["sentiment"].tolist() == ["unknown", "unknown", "positive"]
    assert out["probability"].tolist()[:2] == [0.5, 0.5]
    assert_every_python_form_gives_the_same_answer(mlflow.pyfunc.load_model(uri), texts)


def assert_every_python_form_gives_the_same_answer(model, texts):
    """A DataFrame, a Series named `text`, and `{"text": [...]}` (MLflow makes one row holding
    the list of it, unwrapped by enforced_texts) are scored alike. A bare list or an unnamed
    Series cannot be: MLflow's schema enforcement turns it into a column named 0 and refuses it
    for the missing `text` column before the model runs (docs/serving.md)."""
    from mlflow.exceptions import MlflowException

    expected = model.predict(pd.DataFrame({"text": texts}))
    for form in (pd.Series(texts, name="text"), {"text": texts}):
        pd.testing.assert_frame_equal(model.predict(form), expected)
    for form in (texts, pd.Series(texts)):
        with pytest.raises(MlflowException, match=r"missing inputs \['text'\]"):
            model.predict(form)
