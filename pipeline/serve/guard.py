"""The ASGI middleware in front of MLflow's scoring app (`Guard`), and the model wrapper MLflow's
app calls (`CheckedModel`): the request checks of `pipeline.serve.checks` applied as a request
arrives, readiness on /ping and /health, the common request forms scored directly, and every
error answer replaced by one that names the problem without echoing the input."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import sys
import traceback
import uuid
from collections.abc import Callable

from pipeline.contract import FORMAT_HINT
from pipeline.serve.checks import (
    GET_PATHS,
    PROBE_PATHS,
    Limits,
    RequestError,
    absolute_form,
    body_kind,
    checked_json,
    csv_as_json,
    declared_length,
    error_body,
    host_name,
    identity_encoding,
    refusal,
    too_large,
)
from pipeline.serve.fast import (
    bundle_predict,
    frame_predict,
    plain_texts,
    predictions_json,
    runs_inline,
)
from pipeline.serve.served import VERSION_HEADER

log = logging.getLogger("uvicorn.error")

# What the model wrapper decided about a failed prediction, for the middleware to answer with:
# set per request by Guard, filled in by CheckedModel.predict (in MLflow's worker thread, which
# runs in a copy of the request's context that shares this dict).
_FAILURE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("failure", default=None)


def internal_error(during: str) -> str:
    """A 500's message: an id to find the details by in the server log, and nothing else."""
    error_id = uuid.uuid4().hex[:12]
    trace = traceback.format_exc() if sys.exc_info()[0] else ""
    log.error("internal error %s in %s\n%s", error_id, during, trace)
    return f"internal error {error_id}; details are in the server log"


async def respond(send, status: int, body: bytes, close: bool = False, extra=()) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.extend(extra)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of MLflow's scoring app; see the module docstring.

    The common request forms, holding only valid texts, are scored here by the model's bundle
    (`pipeline.serve.fast`), and answered with the JSON MLflow's app would give: its parsing,
    a pandas frame in and out and its serializer cost more than scoring one short text."""

    def __init__(
        self, app, limits: Limits, readiness: Callable[[], tuple[int, int]], model=None, served=None
    ):
        self.app = app
        self.limits = limits
        self.readiness = readiness
        self.model = model
        # The bundle's predict(texts) when the model is this project's, else the whole model's.
        self.predict = None if model is None else bundle_predict(model) or frame_predict(model)
        self.served = served  # what GET /version answers: {name, alias, version, run_id}
        version = (served or {}).get("version")
        self.version_header = None if version is None else (VERSION_HEADER, str(version).encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.version_header is not None:
            send = with_header(send, self.version_header)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        scope, host = absolute_form(scope, headers.get("host"))
        allowed = self.limits.allowed_hosts
        refused = refusal(scope)
        foreign = allowed is not None and host is not None and host_name(host) not in allowed
        if refused is None and foreign:
            refused = 421, "this server does not answer for that Host name", []
        if refused is not None:
            status, message, extra = refused
            return await respond(send, status, error_body(status, message), extra=extra)
        if scope["method"] == "HEAD" and scope["path"] in GET_PATHS:
            scope, send = {**scope, "method": "GET"}, headers_only(send)
        if scope["path"] in PROBE_PATHS:
            ready, total = self.readiness()
            if ready < total:
                message = f"not ready: {ready} of {total} workers have loaded the model"
                return await respond(send, 503, error_body(503, message))
        if scope["path"] == "/invocations" and scope["method"] == "POST":
            return await self.invocations(scope, receive, send, headers)
        if scope["path"] == "/version" and scope["method"] == "GET" and self.served is not None:
            return await respond(send, 200, json.dumps(self.served).encode())
        return await self.app(scope, receive, send)

    async def invocations(self, scope, receive, send, headers: dict[str, str]):
        limit = self.limits.max_body_bytes
        ends = asyncio.get_running_loop().time() + self.limits.scoring_seconds
        try:
            if sum(k.lower() == b"content-type" for k, _ in scope["headers"]) > 1:
                raise RequestError(400, "the request has more than one Content-Type")
            identity_encoding(headers.get("content-encoding"))
            kind = body_kind(headers.get("content-type"))
            declared = declared_length(headers.get("content-length"))
            if declared is not None and declared > limit:
                raise too_large(limit)
            body = await read_body(receive, limit)
            if body is None:
                return  # the client went away
            request = None  # the parsed JSON, which the guard may answer itself
            inline = runs_inline(len(body), self.limits.scoring_seconds)
            if kind == "csv":
                body = await in_time(ends, csv_as_json, body)
            elif inline:
                request = checked_json(body, self.limits.max_json_depth)
            else:
                request = await in_time(ends, checked_json, body, self.limits.max_json_depth)
            answer = None
            if request is not None and self.predict is not None:
                answer = (
                    self.scored(request) if inline else await in_time(ends, self.scored, request)
                )
        except RequestError as error:
            body = error_body(error.status, error.message)
            unread = error.status in (413, 415)  # answered before the body was read
            return await respond(send, error.status, body, close=unread)
        except Exception:
            body = error_body(500, internal_error("checking a request"))
            return await respond(send, 500, body)
        if answer is not None:
            return await respond(send, 200, answer)
        scope = {**scope, "headers": forwarded_headers(scope["headers"], len(body))}
        failure: dict = {}
        token = _FAILURE.set(failure)
        answer = Answer(send, failure)
        try:
            await self.app(scope, replay(body, receive), answer.send)
        except Exception:
            body = error_body(500, internal_error("the scoring app"))
            if not answer.started:
                await respond(send, 500, body)
        finally:
            _FAILURE.reset(token)

    def scored(self, request: dict) -> bytes | None:
        """The answer to a request of plain texts, or None to let MLflow's app answer."""
        texts = plain_texts(request)
        if texts is None:
            return None
        try:
            return predictions_json(self.predict(texts))
        except Exception:
            return None  # MLflow's app answers, and reports the failure its way


def with_header(send, header: tuple[bytes, bytes]):
    """`send` adding `header` to the response's headers."""

    async def sent(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), header]}
        await send(message)

    return sent


async def in_time(ends: float, func: Callable, *args):
    """`func(*args)` run in a thread, or a 504 once the loop's clock passes `ends`. The thread
    runs on (Python cannot stop it); the worker goes on serving other requests meanwhile."""
    left = ends - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(asyncio.to_thread(func, *args), max(left, 0))
    except TimeoutError:
        raise RequestError(504, "scoring took longer than this server's time limit") from None


async def read_body(receive, limit: int) -> bytes | None:
    """The request body, counted as it arrives: a 413 as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def headers_only(send):
    """`send` for a HEAD request: the GET answer's status and headers, without its body."""

    async def sent(message):
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return sent


def forwarded_headers(headers: list, length: int) -> list:
    """The request's headers as MLflow's app sees them: JSON of `length` bytes, not chunked."""
    dropped = {b"content-type", b"content-length", b"transfer-encoding", b"content-encoding"}
    kept = [(k, v) for k, v in headers if k.lower() not in dropped]
    return [*kept, (b"content-type", b"application/json"), (b"content-length", b"%d" % length)]


def replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class Answer:
    """Passes MLflow's successful responses through and replaces every error response: with the
    model wrapper's safe error when there is one, else with a message of our own."""

    def __init__(self, send, failure: dict):
        self._send = send
        self.failure = failure
        self.started = False
        self._held: dict | None = None
        self._chunks: list[bytes] = []

    async def send(self, message):
        if message["type"] == "http.response.start":
            self.started = True
            if message["status"] >= 400:
                self._held = message
                return
        elif message["type"] == "http.response.body" and self._held is not None:
            self._chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, body = self.replacement(self._held["status"], b"".join(self._chunks))
            return await respond(self._send, status, body)
        await self._send(message)

    def replacement(self, status: int, inner: bytes) -> tuple[int, bytes]:
        if self.failure:
            return self.failure["status"], self.failure["body"]
        if status == 504:
            return 504, error_body(504, "scoring took longer than this server's time limit")
        if 400 <= status < 500:
            return status, error_body(status, f"the request does not fit the model: {FORMAT_HINT}")
        return 500, error_body(500, internal_error(f"the scoring app: {status} {inner[:500]!r}"))


class CheckedModel:
    """The loaded model as MLflow's scoring app calls it: the texts checked first (this
    package's rules, whatever code the model was logged with), every failure turned into an
    error whose body names the problem without echoing the input."""

    def __init__(self, model, check: Callable, safe_error: type):
        self._model = model
        self._check = check
        self._safe_error = safe_error
        self.metadata = model.metadata

    def unwrap_python_model(self):
        """The model's PythonModel (whose bundle the guard's fast path scores with)."""
        return self._model.unwrap_python_model()

    def predict(self, data, params=None):
        try:
            self._check(data)
            return self._model.predict(data, params=params)
        except Exception as exc:
            status, message = self.classify(exc)
            error = self._safe_error(status, message)
            failure = _FAILURE.get()
            if failure is not None:
                failure.update(status=status, body=error.serialize_as_json().encode())
            raise error from None

    @staticmethod
    def classify(exc: Exception) -> tuple[int, str]:
        # The model's own InputError may come from another copy of pipeline.pyfunc (the code
        # logged with the model), so it is recognised by name.
        if type(exc).__name__ == "InputError" and hasattr(exc, "get_http_status_code"):
            return 400, exc.message
        if hasattr(exc, "get_http_status_code") and 400 <= exc.get_http_status_code() < 500:
            log.info("rejected by the model's schema: %.300s", getattr(exc, "message", exc))
            return 400, f"the input does not fit the model's signature: {FORMAT_HINT}"
        return 500, internal_error("scoring")


def text_checker() -> Callable:
    """The check CheckedModel runs on what MLflow parsed: a table, a list, or a dict of columns."""
    import numpy as np

    from pipeline.pyfunc import column_checked, texts_from

    def check(data) -> None:
        # Before MLflow's schema enforcement, which makes {"text": [...]} one row holding the
        # list: here a row holding an array is still one row, and a 400.
        if isinstance(data, dict):
            values = data[column_checked(list(data))]
            data = list(values) if isinstance(values, list | tuple | np.ndarray) else [values]
        texts_from(data)

    return check


@functools.cache
def safe_error_type() -> type:
    """An MlflowException whose JSON is only its code and the message it was made with (MLflow's
    scoring code prefixes a failed prediction's message with the whole input)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

    class SafeError(MlflowException):
        def __init__(self, status: int, message: str):
            code = INVALID_PARAMETER_VALUE if status < 500 else INTERNAL_ERROR
            super().__init__(message, error_code=code)
            self.safe_message = message

        def serialize_as_json(self) -> str:
            return json.dumps({"error_code": self.error_code, "message": self.safe_message})

    return SafeError


def build_app(
    model,
    limits: Limits,
    readiness: Callable[[], tuple[int, int]],
    check: Callable,
    served: dict | None = None,
):
    """MLflow's scoring app for `model` (a loaded PyFuncModel), wrapped in the Guard; `served`
    is what GET /version answers (its version also goes in every answer's X-Model-Version)."""
    from mlflow.pyfunc import scoring_server

    checked = CheckedModel(model, check, safe_error_type())
    return Guard(scoring_server.init(checked), limits, readiness, model=checked, served=served)
