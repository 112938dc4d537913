"""The guard's fast path: the common request forms, holding only valid texts, scored by the
model's bundle directly and answered with the bytes MLflow's scoring app would send.

MLflow's app parses the JSON into a pandas frame, enforces the model's schema on it, calls the
model in a thread of its pool and serializes a frame back: for one short text that costs more
than tokenizing and scoring it. Here a request of plain texts goes straight to the bundle's
`predict` (what the logged `SentimentModel.predict` calls after the same checks), and a small
request is parsed and scored on the event loop, without a thread hand-off."""

from __future__ import annotations

import json
from collections.abc import Callable

from pipeline.contract import TEXT_COLUMN
from pipeline.text import is_encodable

# A request body up to this size is parsed and scored on the event loop: a thread hand-off
# costs more than scoring it (a few milliseconds at most), and no time limit of a second or
# more can pass meanwhile. Larger ones, and any with a shorter limit, run in a thread that the
# time limit can abandon.
INLINE_BYTES = 16_384
INLINE_MIN_SECONDS = 1.0
COLUMNS = ("label", "sentiment", "probability")


def plain_texts(value: dict) -> list[str] | None:
    """The texts of the common request forms, when every one is a scoreable string:
    {"inputs": [...]}, {"dataframe_split": {"columns": ["text"], "data": [[...], ...]}},
    {"dataframe_records": [{"text": ...}, ...]}, without params. None for anything else."""
    if len(value) != 1:
        return None
    key, body = next(iter(value.items()))
    texts = None
    if key == "inputs" and isinstance(body, list):
        texts = body
    elif key == "dataframe_split" and _one_text_column(body):
        texts = [row[0] for row in body["data"]]
    elif key == "dataframe_records" and _text_records(body):
        texts = [row[TEXT_COLUMN] for row in body]
    if texts is None or not all(isinstance(t, str) and is_encodable(t) for t in texts):
        return None
    return texts


def _text_records(records) -> bool:
    return isinstance(records, list) and all(
        isinstance(row, dict) and row.keys() == {TEXT_COLUMN} for row in records
    )


def _one_text_column(split) -> bool:
    return (
        isinstance(split, dict)
        and split.keys() == {"columns", "data"}
        and split["columns"] == [TEXT_COLUMN]
        and isinstance(split["data"], list)
        and all(isinstance(row, list) and len(row) == 1 for row in split["data"])
    )


def runs_inline(body_bytes: int, scoring_seconds: float) -> bool:
    """Whether a request of this size is parsed and scored on the event loop."""
    return body_bytes <= INLINE_BYTES and scoring_seconds >= INLINE_MIN_SECONDS


def bundle_predict(model) -> Callable | None:
    """The `predict(texts)` of the bundle inside a loaded pyfunc model of this project (its
    `SentimentModel.bundle`), or None for any other model, which is then called through
    MLflow's `predict` as before."""
    unwrap = getattr(model, "unwrap_python_model", None)
    if unwrap is None:
        return None
    try:
        python_model = unwrap()
    except Exception:  # not a PythonModel (another flavor): MLflow's path
        return None
    predict = getattr(getattr(python_model, "bundle", None), "predict", None)
    return predict if callable(predict) else None


def frame_predict(model) -> Callable:
    """`predict(texts)` through the whole pyfunc model: a frame in, MLflow's schema enforcement."""
    import pandas as pd

    return lambda texts: model.predict(pd.DataFrame({TEXT_COLUMN: texts}))


def predictions_json(frame) -> bytes:
    """MLflow's answer to a frame of predictions, byte for byte: its `predictions_to_json` is
    `json.dump({"predictions": frame.to_dict(orient="records")})` with the default separators."""
    columns = [frame[name].tolist() for name in COLUMNS]
    predictions = [
        {"label": label, "sentiment": sentiment, "probability": probability}
        for label, sentiment, probability in zip(*columns, strict=True)
    ]
    return json.dumps({"predictions": predictions}).encode()
