"""`serve`: MLflow's own scoring server for a model URI, behind request checks that keep the
model's contract under hostile input, with worker processes that take traffic only once loaded.

The protocol is MLflow's (`mlflow.pyfunc.scoring_server`): /ping, /health, /version and
/invocations with dataframe_split, dataframe_records, inputs or instances. In front of it an
ASGI middleware (`Guard`) answers what MLflow's app cannot: a Host allow-list (421), a missing or
unsupported Content-Type (415), a body over the size limit, counted while it is read (413), a
body that is not UTF-8 JSON or nests too deeply (400), and CSV, which it parses into a
`dataframe_split` of the `text` column. Every error body is `{"error_code", "message"}` with a
message that names the problem and the rows, never a stack trace, a path or the input sent.

Start-up: the parent binds the listening socket first (early connections wait in its backlog),
downloads the model once, then starts the workers (spawned, not forked: TensorFlow is not
fork-safe). Each worker loads the model, scores the model's input example, and only then accepts
connections; /ping and /health answer 503 until every worker has. Nothing kills a worker for
being slow to load; the parent restarts a worker that dies after it was ready, stops everything
if one dies before, and stops all workers on SIGTERM or SIGINT.

This module is imported by the CLI before the socket is bound, so MLflow, uvicorn and the model's
libraries are imported inside functions, in the process that needs them.
"""

from __future__ import annotations

import asyncio
import contextvars
import csv
import functools
import io
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from pipeline.errors import PipelineError
from pipeline.text import LONE_SURROGATE, is_encodable

DEFAULT_MAX_BODY_BYTES = 5_000_000
MAX_JSON_DEPTH = 10  # {"dataframe_split": {"data": [[...]]}} is 4 deep
BACKLOG = 2048
SHUTDOWN_SECONDS = 30  # a worker still running this long after SIGTERM is killed
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
TEXT_COLUMN = "text"  # pipeline.pyfunc's, not imported here: it imports MLflow
FORMAT_HINT = (
    "send a JSON object with one of the keys dataframe_split, dataframe_records, inputs or "
    f"instances, holding a '{TEXT_COLUMN}' column of strings"
)
PROBE_PATHS = ("/ping", "/health")
MAX_ROWS_NAMED = 5  # as pipeline.pyfunc's
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

log = logging.getLogger("uvicorn.error")


# Request checks: pure functions over headers and bytes.


class RequestError(Exception):
    """A request answered by the middleware itself: HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    allowed_hosts: frozenset[str] | None = None  # None: any Host


ERROR_CODES = {
    400: "BAD_REQUEST",
    413: "REQUEST_LIMIT_EXCEEDED",
    415: "UNSUPPORTED_MEDIA_TYPE",
    421: "MISDIRECTED_REQUEST",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> bytes:
    """MLflow's error shape: {"error_code", "message"}."""
    code = ERROR_CODES.get(status, "BAD_REQUEST")
    return json.dumps({"error_code": code, "message": message}).encode()


def body_kind(content_type: str | None) -> str:
    """'json' or 'csv' for a Content-Type the server reads (UTF-8 only), else a 415."""
    if not content_type or not content_type.strip():
        raise RequestError(415, "missing Content-Type: send application/json or text/csv")
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    kind = {"application/json": "json", "text/csv": "csv"}.get(mime.lower())
    if kind is None:
        raise RequestError(415, "unsupported Content-Type: send application/json or text/csv")
    for parameter in filter(None, parameters):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset":
            raise RequestError(415, "unsupported Content-Type parameter: only charset is read")
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestError(415, "unsupported charset: the body must be UTF-8")
    return kind


def declared_length(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def too_large(limit: int) -> RequestError:
    return RequestError(413, f"the body is larger than this server's limit of {limit} bytes")


def decoded(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not valid UTF-8 (byte {exc.start})") from None


def json_depth_exceeds(value, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` levels (the top one is level 1)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def checked_json(body: bytes, max_depth: int) -> dict:
    """The body's JSON object, once it is one MLflow's parser will read: one format key, nesting
    within `max_depth`; else a 400 that names the problem."""
    text = decoded(body)
    if not text.strip():
        raise RequestError(400, f"the body is empty: {FORMAT_HINT}")
    too_deep = RequestError(400, f"the JSON nests deeper than {max_depth} levels")
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except json.JSONDecodeError as exc:
        what = exc.msg.removesuffix(" at").removesuffix(" starting")  # "Unterminated string ..."
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RequestError(400, f"the body is not valid JSON: {what.lower()} at {where}") from None
    except ValueError:  # Python's limit on the digits of an integer (sys.get_int_max_str_digits)
        raise RequestError(400, "the JSON holds a number with too many digits") from None
    if isinstance(value, dict | list) and json_depth_exceeds(value, max_depth):
        raise too_deep
    if not isinstance(value, dict):
        raise RequestError(400, f"the JSON is not an object: {FORMAT_HINT}")
    found = [key for key in FORMATS if key in value]
    if len(found) != 1:
        raise RequestError(
            400, f"the JSON object has {len(found)} of the format keys, not one: {FORMAT_HINT}"
        )
    if _SURROGATE_ESCAPE.search(text):  # else no string can hold a lone surrogate
        rows = lone_surrogate_rows(value[found[0]])
        if rows:
            raise RequestError(400, named_rows(rows, LONE_SURROGATE))
    return value


def lone_surrogate_rows(requests) -> list[int | None]:
    """The rows of a request (the value of its format key) with a lone surrogate in a string, in
    order; None for one outside the rows (a column name, a key). MLflow's parser puts the texts
    into pandas, which cannot hold them, before the model could name the row."""
    rows = requests
    if isinstance(rows, dict):  # dataframe_split, or inputs/instances given as columns
        rows = rows.get("data", rows.get(TEXT_COLUMN))
    found = (
        [i for i, row in enumerate(rows) if not all_encodable(row)]
        if isinstance(rows, list)
        else []
    )
    if not found and not all_encodable(requests):
        found = [None]
    return found


def all_encodable(value) -> bool:
    """Whether every string in a JSON value (keys too) can be encoded as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_encodable(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def named_rows(rows: list[int | None], problem: str) -> str:
    if rows == [None]:
        return "a key or column name holds a lone surrogate (\\ud800-\\udfff)"
    shown = "; ".join(f"row {row}: {problem}" for row in rows[:MAX_ROWS_NAMED])
    more = len(rows) - MAX_ROWS_NAMED
    return shown + (f"; and {more} more rows" if more > 0 else "")


def csv_as_json(body: bytes) -> bytes:
    """A CSV body with a header row naming a `text` column, as the JSON `dataframe_split` of
    that column. Rows count from 0 after the header; blank lines are skipped; quoting as in RFC
    4180 (a text with commas, quotes or line breaks is quoted)."""
    text = decoded(body).removeprefix("\ufeff")  # a byte-order mark, as spreadsheets write
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    texts: list[str] = []
    try:
        header = next(rows, None)
        if not header:
            raise RequestError(400, f"the CSV has no header row naming a '{TEXT_COLUMN}' column")
        if TEXT_COLUMN not in header:
            raise RequestError(400, f"the CSV header has no '{TEXT_COLUMN}' column")
        column, width = header.index(TEXT_COLUMN), len(header)
        for row in rows:
            if not row:
                continue
            if len(row) != width:
                raise RequestError(
                    400, f"CSV row {len(texts)}: {len(row)} fields, the header has {width}"
                )
            texts.append(row[column])
    except csv.Error as exc:
        raise RequestError(
            400, f"the body is not valid CSV (line {rows.line_num}: {exc})"
        ) from None
    split = {"columns": [TEXT_COLUMN], "data": [[text] for text in texts]}
    return json.dumps({"dataframe_split": split}, ensure_ascii=False).encode()


def host_name(header: str) -> str:
    """The name of a Host header without its port: `[::1]:5000` -> `::1`, `a.b:80` -> `a.b`."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(option: str | None, bind_host: str) -> frozenset[str] | None:
    """The Host names answered: the option's comma-separated names (`*`: any); without it, the
    loopback names when bound to loopback (against DNS rebinding), else any."""
    if option is None:
        return LOOPBACK_NAMES | {bind_host.lower().strip("[]")} if is_loopback(bind_host) else None
    names = {name.strip().lower().strip("[]").rstrip(".") for name in option.split(",")}
    names.discard("")
    if not names:
        raise PipelineError("--allowed-hosts names no host; use '*' to allow any")
    return None if "*" in names else frozenset(names)


# The ASGI middleware.

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


async def respond(send, status: int, body: bytes, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
        texts = [row["text"] for row in body]
    if texts is None or not all(isinstance(t, str) and is_encodable(t) for t in texts):
        return None
    return texts


def _text_records(records) -> bool:
    return isinstance(records, list) and all(
        isinstance(row, dict) and row.keys() == {"text"} for row in records
    )


def _one_text_column(split) -> bool:
    return (
        isinstance(split, dict)
        and split.keys() == {"columns", "data"}
        and split["columns"] == ["text"]
        and isinstance(split["data"], list)
        and all(isinstance(row, list) and len(row) == 1 for row in split["data"])
    )


class Guard:
    """ASGI middleware in front of MLflow's scoring app; see the module docstring.

    The common request forms, holding only valid texts, are scored here through the same
    model, and answered with the JSON MLflow's app would give: its parsing, a pandas frame in
    and out and its serializer cost more than scoring one short text."""

    def __init__(self, app, limits: Limits, readiness: Callable[[], tuple[int, int]], model=None):
        self.app = app
        self.limits = limits
        self.readiness = readiness
        self.model = model

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = self.limits.allowed_hosts
        if allowed is not None and host_name(headers.get("host", "")) not in allowed:
            body = error_body(421, "this server does not answer for that Host name")
            return await respond(send, 421, body)
        if scope["path"] in PROBE_PATHS:
            ready, total = self.readiness()
            if ready < total:
                message = f"not ready: {ready} of {total} workers have loaded the model"
                return await respond(send, 503, error_body(503, message))
        if scope["path"] == "/invocations" and scope["method"] == "POST":
            return await self.invocations(scope, receive, send, headers)
        return await self.app(scope, receive, send)

    async def invocations(self, scope, receive, send, headers: dict[str, str]):
        limit = self.limits.max_body_bytes
        try:
            kind = body_kind(headers.get("content-type"))
            declared = declared_length(headers.get("content-length"))
            if declared is not None and declared > limit:
                raise too_large(limit)
            body = await read_body(receive, limit)
            if body is None:
                return  # the client went away
            request = None  # the parsed JSON, which the guard may answer itself
            if kind == "csv":
                body = await asyncio.to_thread(csv_as_json, body)
            else:
                request = await asyncio.to_thread(checked_json, body, self.limits.max_json_depth)
        except RequestError as error:
            body = error_body(error.status, error.message)
            unread = error.status in (413, 415)  # answered before the body was read
            return await respond(send, error.status, body, close=unread)
        except Exception:
            body = error_body(500, internal_error("checking a request"))
            return await respond(send, 500, body)
        if request is not None and self.model is not None:
            answer = await asyncio.to_thread(self.scored, request)
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
        import pandas as pd

        texts = plain_texts(request)
        if texts is None:
            return None
        try:
            frame = self.model.predict(pd.DataFrame({"text": texts}))
        except Exception:
            return None  # MLflow's app answers, and reports the failure its way
        predictions = [
            {"label": int(label), "sentiment": str(sentiment), "probability": float(p)}
            for label, sentiment, p in frame[["label", "sentiment", "probability"]].itertuples(
                index=False
            )
        ]
        return json.dumps({"predictions": predictions}).encode()


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


def forwarded_headers(headers: list, length: int) -> list:
    """The request's headers as MLflow's app sees them: JSON of `length` bytes, not chunked."""
    dropped = {b"content-type", b"content-length", b"transfer-encoding"}
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

    from pipeline.pyfunc import InputError, texts_from

    def check(data) -> None:
        if isinstance(data, dict):
            if TEXT_COLUMN not in data:
                raise InputError(f"missing column '{TEXT_COLUMN}'")
            values = data[TEXT_COLUMN]
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


def build_app(model, limits: Limits, readiness: Callable[[], tuple[int, int]], check: Callable):
    """MLflow's scoring app for `model` (a loaded PyFuncModel), wrapped in the Guard."""
    from mlflow.pyfunc import scoring_server

    checked = CheckedModel(model, check, safe_error_type())
    return Guard(scoring_server.init(checked), limits, readiness, model=checked)


# Worker processes.


@dataclass(frozen=True)
class WorkerSettings:
    model_dir: str
    limits: Limits
    parent_pid: int
    log_level: str = "info"


def load_model(model_dir: Path):
    """Load like `mlflow models serve`: the model's logged code, not this process's copy of the
    same package (its modules are dropped from sys.modules first; the checks keep theirs)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    flavor = Model.load(model_dir / "MLmodel").flavors.get("python_function", {})
    if flavor.get("code") and (model_dir / flavor["code"]).is_dir():
        logged = {
            entry.name.removesuffix(".py") for entry in (model_dir / flavor["code"]).iterdir()
        }
        for name in [m for m in sys.modules if m.split(".")[0] in logged]:
            del sys.modules[name]
    return mlflow.pyfunc.load_model(str(model_dir))


def warm_up(model, model_dir: Path) -> None:
    """Score the model's input example once: the first request should not pay for tracing."""
    from mlflow.pyfunc import scoring_server

    example = model_dir / "serving_input_example.json"
    if example.is_file():
        schema = model.metadata.get_input_schema()
        answer = scoring_server.invocations(
            example.read_text(encoding="utf-8"), "application/json", model, schema
        )
        if answer.status != 200:
            raise RuntimeError(f"the model's input example failed with HTTP {answer.status}")


def exit_with_parent(parent_pid: int) -> None:
    """SIGTERM to this worker when its parent is gone (killed without stopping the workers)."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def run_worker(index: int, sock: socket.socket, settings: WorkerSettings, ready) -> None:
    """One worker process: load, warm up, then serve the inherited socket until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    exit_with_parent(settings.parent_pid)
    import uvicorn

    model_dir = Path(settings.model_dir)
    safe_error_type()
    check = text_checker()  # imported from this package before load_model drops its modules
    model = load_model(model_dir)
    warm_up(model, model_dir)
    csv.field_size_limit(settings.limits.max_body_bytes)
    app = build_app(model, settings.limits, lambda: (sum(ready), len(ready)), check)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                log.info("worker %d (pid %d) ready", index, os.getpid())
                ready[index] = 1

        def handle_exit(self, sig, frame):
            if sig != signal.SIGINT:  # Ctrl-C reaches the whole group; the parent decides
                super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level=settings.log_level,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS - 5,
    )
    Server(config).run(sockets=[sock])


# The parent process.


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket the workers inherit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def local_model(uri: str, dst: Path) -> Path:
    """A folder holding the model: `uri` itself when it is one, else MLflow's download of it."""
    if (Path(uri) / "MLmodel").is_file():
        return Path(uri).resolve()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except MlflowException as exc:
        raise PipelineError(f"cannot load model {uri}: {exc.message.splitlines()[0]}") from None
    if not (path / "MLmodel").is_file():
        raise PipelineError(f"cannot load model {uri}: no MLmodel file in it")
    return path


class _Stopped(Exception):
    """SIGTERM or SIGINT while the parent is not yet supervising workers."""


class Supervisor:
    """Starts the workers, restarts one that dies after it was ready, stops all on a signal."""

    def __init__(self, sock: socket.socket, settings: WorkerSettings, workers: int):
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.sock = sock
        self.settings = settings
        self.ready = self.context.RawArray("b", workers)
        self.processes: list = [None] * workers
        self.seen_ready = [False] * workers
        self.stop_signal: int | None = None

    def start(self, index: int) -> None:
        self.ready[index] = 0
        self.seen_ready[index] = False
        process = self.context.Process(
            target=run_worker,
            args=(index, self.sock, self.settings, self.ready),
            name=f"serve-worker-{index}",
        )
        process.start()
        self.processes[index] = process

    def on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def run(self, url: str) -> None:
        from multiprocessing.connection import wait

        for index in range(len(self.processes)):
            self.start(index)
        announced = False
        try:
            while self.stop_signal is None:
                wait([p.sentinel for p in self.processes], timeout=0.5)
                for index, process in enumerate(self.processes):
                    if self.ready[index]:
                        self.seen_ready[index] = True
                    if process.exitcode is None or self.stop_signal is not None:
                        continue
                    self.ready[index] = 0
                    if not self.seen_ready[index]:
                        raise PipelineError(
                            f"worker {index} exited with code {process.exitcode} before it had "
                            "loaded the model (its log is above)"
                        )
                    click.echo(
                        f"worker {index} exited with code {process.exitcode}; restarting", err=True
                    )
                    self.start(index)
                if not announced and all(self.seen_ready):
                    count = len(self.processes)
                    click.echo(f"serving at {url}: {count} of {count} workers ready", err=True)
                    announced = True
        finally:
            self.stop()

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        alive = [p for p in self.processes if p is not None and p.exitcode is None]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()


def announce_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@click.command("serve")
@click.option(
    "-m",
    "--model",
    "model_uri",
    required=True,
    help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model, or a model folder.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes, each holding the model.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="Largest request body read; a larger one gets HTTP 413.",
)
@click.option(
    "--allowed-hosts",
    "allowed_hosts_option",
    default=None,
    help="Comma-separated Host names answered, '*' for any. Default: the loopback names when "
    "--host is a loopback address, else any.",
)
def command(model_uri, host, port, workers, max_body_bytes, allowed_hosts_option):
    """Serve a model with MLflow's scoring protocol, hardened against hostile requests."""
    limits = Limits(max_body_bytes, MAX_JSON_DEPTH, allowed_hosts(allowed_hosts_option, host))
    sock = listen(host, port)
    url = announce_address(sock)
    click.echo(f"listening on {url}; loading {model_uri} in {workers} worker(s)", err=True)
    if limits.allowed_hosts is None and not is_loopback(host):
        click.echo(
            "warning: any Host name is answered; set --allowed-hosts to the names used", err=True
        )
    stopped = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    try:
        with sock, tempfile.TemporaryDirectory(prefix="serve-model-") as tmp:
            model_dir = local_model(model_uri, Path(tmp))
            settings = WorkerSettings(str(model_dir), limits, os.getpid())
            supervisor = Supervisor(sock, settings, workers)
            signal.signal(signal.SIGTERM, supervisor.on_signal)
            signal.signal(signal.SIGINT, supervisor.on_signal)
            supervisor.run(url)
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, stopped[0])
        signal.signal(signal.SIGINT, stopped[1])
    click.echo("stopped", err=True)


def _raise_stopped(signum, frame):
    raise _Stopped()
