"""The server's request checks: pure functions over headers and bytes, answered before MLflow's
app sees a request. A Host allow-list (421), a missing or unsupported Content-Type (415), a body
over the size limit (413), a body that is not UTF-8 JSON or nests too deeply (400), and CSV,
parsed into a `dataframe_split` of the text column. Every error body is
`{"error_code", "message"}` with a message that names the problem and the rows, never a stack
trace, a path or the input sent."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from dataclasses import dataclass

from pipeline.contract import FORMAT_HINT, FORMATS, MEDIA_HINT, MEDIA_TYPES, TEXT_COLUMN, rows_named
from pipeline.errors import PipelineError
from pipeline.text import LONE_SURROGATE, is_encodable

DEFAULT_MAX_BODY_BYTES = 5_000_000
MAX_JSON_DEPTH = 10  # {"dataframe_split": {"data": [[...]]}} is 4 deep
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
PROBE_PATHS = ("/ping", "/health")
# The contract's paths: everything else (FastAPI's /docs, /redoc, /openapi.json) is a 404.
GET_PATHS = (*PROBE_PATHS, "/version")
PATHS = frozenset({*GET_PATHS, "/invocations"})
MAX_TARGET_BYTES = 8192
MAX_HEADER_BYTES = 32768
PATHS_HINT = "this server answers POST /invocations and GET " + ", ".join(GET_PATHS)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
    scoring_seconds: float = 60.0  # MLflow's MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT, on every path


ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    413: "REQUEST_LIMIT_EXCEEDED",
    405: "METHOD_NOT_ALLOWED",
    414: "REQUEST_LIMIT_EXCEEDED",
    415: "UNSUPPORTED_MEDIA_TYPE",
    431: "REQUEST_LIMIT_EXCEEDED",
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
        raise RequestError(415, f"missing Content-Type: {MEDIA_HINT}")
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    kind = MEDIA_TYPES.get(mime.lower())
    if kind is None:
        raise RequestError(415, f"unsupported Content-Type: {MEDIA_HINT}")
    for parameter in filter(None, parameters):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset":
            raise RequestError(415, "unsupported Content-Type parameter: only charset is read")
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestError(415, "unsupported charset: the body must be UTF-8")
    return kind


def identity_encoding(content_encoding: str | None) -> None:
    """Nothing for a body sent as is; a 415 for any Content-Encoding (gzip, br, ...): a
    compressed body is not read (no decompression, so no bomb to cap)."""
    codings = {c.strip().lower() for c in (content_encoding or "").split(",")} - {"", "identity"}
    if codings:
        raise RequestError(415, "unsupported Content-Encoding: send the body uncompressed")


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
    return rows_named((row, problem) for row in rows)


def csv_as_json(body: bytes) -> bytes:
    """A CSV body with a header row naming the text column, as the JSON `dataframe_split` of
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


def refusal(scope: dict) -> tuple[int, str, list] | None:
    """The status, message and extra headers of a request refused for its request line or the
    size of its headers (None: none of these): a version other than HTTP/1.0 and 1.1, a long
    URL or header block, a path outside the contract, a method the path does not take."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        return 400, "unsupported HTTP version: send HTTP/1.1", [(b"connection", b"close")]
    if len(scope["raw_path"]) + len(scope["query_string"]) > MAX_TARGET_BYTES:
        return 414, f"the URL is longer than {MAX_TARGET_BYTES} bytes", []
    if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADER_BYTES:
        return 431, f"the headers are longer than {MAX_HEADER_BYTES} bytes", []
    path, method = scope["path"], scope["method"]
    if path not in PATHS:
        return 404, "no such path: " + PATHS_HINT, []
    allowed = ("GET", "HEAD") if path in GET_PATHS else ("POST",)
    if method not in allowed:
        allow = ", ".join(allowed).encode()
        return 405, f"{path} takes {' and '.join(allowed)} only", [(b"allow", allow)]
    return None


def absolute_form(scope: dict, host: str | None) -> tuple[dict, str | None]:
    """The scope with the path of an absolute-URI request target (`POST http://a:5000/ping`,
    which HTTP/1.1 servers must accept), and the host the request names: the URI's authority,
    else the Host header (None: an HTTP/1.0 request without one, which names none)."""
    path = scope["path"]
    if path.lower().startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        parts = urlsplit(path)
        return {**scope, "path": parts.path or "/"}, parts.netloc
    if host is None and scope.get("http_version") != "1.0":
        host = ""  # HTTP/1.1 requires a Host (h11 answers 400 without one)
    return scope, host
