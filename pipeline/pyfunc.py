"""The MLflow pyfunc wrapper around a bundle, with request validation that answers 4xx."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from pipeline.serving import TEXT_COLUMN, Bundle

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


def texts_from(model_input) -> list[str]:
    """The `text` column as strings, or an MlflowException (HTTP 400) saying what is wrong."""
    if isinstance(model_input, pd.Series):
        model_input = model_input.to_frame(TEXT_COLUMN)
    if isinstance(model_input, list):
        model_input = pd.DataFrame({TEXT_COLUMN: model_input})
    if not isinstance(model_input, pd.DataFrame):
        raise _bad_request(
            f"expected a table with a '{TEXT_COLUMN}' column, got {type(model_input).__name__}"
        )
    if TEXT_COLUMN not in model_input.columns:
        got = ", ".join(map(str, model_input.columns)) or "none"
        raise _bad_request(f"missing column '{TEXT_COLUMN}'; got {got}")
    values = model_input[TEXT_COLUMN].tolist()
    if len(values) == 1 and isinstance(values[0], list | tuple | np.ndarray):
        values = list(values[0])  # {"inputs": [...]} can arrive as one row holding the list
    bad = [i for i, value in enumerate(values) if not isinstance(value, str)]
    if bad:
        shown = ", ".join(f"row {i}: {values[i]!r}" for i in bad[:5])
        raise _bad_request(f"every '{TEXT_COLUMN}' value must be a string; not so at {shown}")
    return values


def _bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pathlib import Path

        self.bundle = Bundle(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return self.bundle.predict(texts_from(model_input))
