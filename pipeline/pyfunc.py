"""The MLflow pyfunc wrapper around a bundle, with request validation that answers 4xx."""

from __future__ import annotations

import math

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from pipeline.contract import TEXT_COLUMN, rows_named
from pipeline.serving import Bundle
from pipeline.text import LONE_SURROGATE, is_encodable

# The input column is declared Any, not string: MLflow would otherwise cast numbers and nulls
# sent as {"inputs": [...]} to text before the model sees them. texts_from() checks the types.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(AnyType(), TEXT_COLUMN)]),
    outputs=Schema(
        [ColSpec("long", "label"), ColSpec("string", "sentiment"), ColSpec("double", "probability")]
    ),
)
INPUT_EXAMPLE = pd.DataFrame(
    {TEXT_COLUMN: ["정말 감동적이고 훌륭한 영화", "지루하고 별로였어 다시 안봐"]}
)


class InputError(MlflowException):
    """A request the model cannot score (HTTP 400). The message names the problem and the rows,
    never the values sent: a server returns it to whoever sent them."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def texts_from(model_input) -> list[str]:
    """The `text` column (of a table, or a list or Series of texts) as strings, one per row, or
    an InputError saying what is wrong and in which rows: a table with other or duplicated
    columns, a cell that is not a string (an array or an object included). Values are checked
    before pandas sees them: it cannot even hold a text with a lone surrogate in its string
    columns."""
    if isinstance(model_input, pd.Series):
        values = model_input.tolist()
    elif isinstance(model_input, list):
        values = model_input
    elif isinstance(model_input, pd.DataFrame):
        values = model_input[column_checked(list(model_input.columns))].tolist()
    else:
        raise InputError(
            f"expected a table with a '{TEXT_COLUMN}' column or a list of texts, got "
            f"{json_kind(model_input)}"
        )
    problems = [(i, problem) for i, value in enumerate(values) if (problem := text_problem(value))]
    if problems:
        raise InputError(rows_named(problems))
    return values


def column_checked(columns: list) -> str:
    """The text column's name, when it is the table's only column; else an InputError."""
    if TEXT_COLUMN not in columns:
        others = len(columns)
        raise InputError(
            f"missing column '{TEXT_COLUMN}'; the table has {others} other "
            f"column{'' if others == 1 else 's'}"
        )
    if columns.count(TEXT_COLUMN) > 1:
        raise InputError(f"the column '{TEXT_COLUMN}' appears {columns.count(TEXT_COLUMN)} times")
    if len(columns) > 1:
        others = len(columns) - 1
        raise InputError(
            f"the table has {others} column{'' if others == 1 else 's'} besides '{TEXT_COLUMN}': "
            f"send only the '{TEXT_COLUMN}' column"
        )
    return TEXT_COLUMN


def enforced_texts(model_input) -> list[str]:
    """The texts of what MLflow's schema enforcement hands the model. It turns the column
    `{"text": [...]}` (how MLflow reads `{"inputs": [...]}`) into one row holding the list; that
    row is unwrapped here, once, and its items must be strings. `pipeline serve` checks the
    request before enforcement, where a cell holding an array is still told apart (a 400)."""
    if (
        isinstance(model_input, pd.DataFrame)
        and len(model_input) == 1
        and list(model_input.columns) == [TEXT_COLUMN]
        and isinstance(model_input.iloc[0, 0], list | tuple | np.ndarray)
    ):
        return texts_from(list(model_input.iloc[0, 0]))
    return texts_from(model_input)


def text_problem(value) -> str | None:
    """Why a value cannot be scored as a text (None if it can), in words that do not echo it."""
    if isinstance(value, str):
        return None if is_encodable(value) else LONE_SURROGATE
    return f"text must be a string, got {json_kind(value)}"


def json_kind(value) -> str:
    """The JSON name of a value's type: null, a boolean, a number, an array, an object."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, int | float | np.number):
        return "a number"
    if isinstance(value, list | tuple | np.ndarray):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pathlib import Path

        self.bundle = Bundle(Path(context.artifacts["bundle"]))

    # A DataFrame hint silences MLflow's request for type hints without turning on its own
    # conversion and validation (it infers nothing from it): its schema enforcement hands over
    # a table, and texts_from() answers 400 for what it cannot score.
    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return self.bundle.predict(enforced_texts(model_input))
