"""The guard's fast path (pipeline/serve/fast.py): plain texts scored by the model's bundle,
answered with the very bytes MLflow's scoring app gives for the same request. A real TF-IDF
bundle saved as this project's pyfunc model; the guard and MLflow's app called in process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline.serve.checks import MAX_JSON_DEPTH, Limits
from pipeline.serve.fast import (
    INLINE_BYTES,
    INLINE_MIN_SECONDS,
    bundle_predict,
    predictions_json,
    runs_inline,
)

TEXTS = ["영화 좋다 1", "영화 싫다 2", "", "\u200b", "😀 good", '최고 최악 "따옴표" \\ 끝']
FORMS = {
    "inputs": lambda texts: {"inputs": texts},
    "dataframe_split": lambda texts: {
        "dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}
    },
    "dataframe_records": lambda texts: {"dataframe_records": [{"text": t} for t in texts]},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import mlflow.pyfunc

    import pipeline
    from pipeline.pyfunc import INPUT_EXAMPLE, SIGNATURE
    from tests.helpers import train_bundles

    folder = tmp_path_factory.mktemp("fast")
    bundle = train_bundles(folder / "bundles")["good"]
    package = Path(pipeline.__file__).parent
    mlflow.pyfunc.save_model(
        path=str(folder / "model"),
        python_model=str(package / "pyfunc_entry.py"),
        artifacts={"bundle": str(bundle)},
        code_paths=[str(package)],
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
    )
    return mlflow.pyfunc.load_model(str(folder / "model"))


def guard_of(model, scoring_seconds: float = 60.0):
    from pipeline.serve.guard import build_app, text_checker

    limits = Limits(5_000_000, MAX_JSON_DEPTH, None, scoring_seconds=scoring_seconds)
    return build_app(model, limits, lambda: (1, 1), text_checker())


def post(app, body: bytes) -> tuple[int, bytes]:
    """One POST /invocations through an ASGI app, as uvicorn hands it over."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict] = []
    delivered = False

    async def receive():
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("size", [1, len(TEXTS), 3000], ids=["one", "several", "large"])
def test_the_fast_path_answers_the_bytes_mlflow_s_app_gives(model, form, size):
    texts = (TEXTS * (size // len(TEXTS) + 1))[:size]
    body = json.dumps(FORMS[form](texts), ensure_ascii=False).encode()
    assert (len(body) > INLINE_BYTES) == (size == 3000)  # the large one runs in a thread
    guard = guard_of(model)
    fast = post(guard, body)
    through_mlflow = post(guard.app, body)  # MLflow's scoring app alone, no guard
    assert guard.scored(json.loads(body)) == through_mlflow[1]  # answered by the fast path
    assert fast == through_mlflow
    assert fast[0] == 200
    predictions = json.loads(fast[1])["predictions"]
    assert len(predictions) == size


def test_the_fast_path_scores_with_the_bundle_not_mlflow_s_predict(model):
    guard = guard_of(model)
    assert guard.predict == model.unwrap_python_model().bundle.predict
    frame = guard.predict(TEXTS)
    assert frame["label"].tolist()[2:4] == [-1, -1]
    assert json.loads(predictions_json(frame))["predictions"][0].keys() == {
        "label",
        "sentiment",
        "probability",
    }


def test_a_short_time_limit_keeps_the_thread_path_with_the_same_answer(model):
    body = json.dumps({"inputs": TEXTS}, ensure_ascii=False).encode()
    assert not runs_inline(len(body), INLINE_MIN_SECONDS / 2)
    assert post(guard_of(model, INLINE_MIN_SECONDS / 2), body) == post(guard_of(model), body)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"inputs": ["a"', 400, "not valid JSON"),
        (b'{"inputs": ["a", null]}', 400, "row 1"),
        (b'{"inputs": ["a"], "params": {"x": 1}}', 200, ""),
        (b'{"a": ' * 20 + b"1" + b"}" * 20, 400, "nests deeper"),
    ],
)
def test_small_requests_off_the_fast_path_get_the_guard_s_answers(model, body, status, message):
    assert runs_inline(len(body), 60.0)
    found, answer = post(guard_of(model), body)
    assert found == status, answer[:300]
    if message:
        assert message in json.loads(answer)["message"]


def test_a_model_without_a_bundle_is_called_through_mlflow_s_predict():
    class Other:
        def unwrap_python_model(self):
            raise ValueError("not a PythonModel")

    assert bundle_predict(Other()) is None
    assert bundle_predict(object()) is None


def test_what_runs_inline():
    assert runs_inline(INLINE_BYTES, 60.0)
    assert not runs_inline(INLINE_BYTES + 1, 60.0)
    assert not runs_inline(100, 0.5)
