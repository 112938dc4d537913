"""`serve`: the request checks as pure functions, then the hostile-input suite against real server
processes on loopback (the `serve` entry point, and `mlflow models serve` for comparison), the
multi-worker start-up and the command's error paths."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

from pipeline.errors import PipelineError
from pipeline.serve import (
    LOOPBACK_NAMES,
    RequestError,
    allowed_hosts,
    body_kind,
    checked_json,
    csv_as_json,
    host_name,
    json_depth_exceeds,
    plain_texts,
)
from tests.conftest import clean_env

CHAMPION = "models:/korean-sentiment@champion"
GOOD = {"inputs": ["정말 감동적이고 훌륭한 영화"]}
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
# What no answer may hold: a stack trace, a file path of the server, a source file name.
LEAKS = ("Traceback", "stack_trace", "/work/", "/tmp/", "/home/", "/usr/", "site-packages", ".py")
LEAK = re.compile("|".join(re.escape(leak) + (r"\b" if leak == ".py" else "") for leak in LEAKS))
MAX_ERROR_BYTES = 1000


# The request checks, without a server.


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/json", "json"),
        ("Application/JSON; charset=UTF-8", "json"),
        ("text/csv", "csv"),
        ('text/csv; charset="utf-8"', "csv"),
    ],
)
def test_body_kind_reads_json_and_csv_in_utf8(header, kind):
    assert body_kind(header) == kind


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Content-Type"),
        ("  ", "missing Content-Type"),
        ("text/plain", "unsupported Content-Type"),
        ("application/vnd.apache.parquet", "unsupported Content-Type"),
        ("application/json; charset=latin-1", "must be UTF-8"),
        ("application/json; format=pandas-split", "only charset"),
    ],
)
def test_body_kind_refuses_other_media_types_with_415(header, message):
    with pytest.raises(RequestError, match=message) as error:
        body_kind(header)
    assert error.value.status == 415
    assert "pandas-split" not in error.value.message


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:5000", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:5000", "::1"),
        ("Example.COM.", "example.com"),
        ("evil.example.com:80", "evil.example.com"),
    ],
)
def test_host_name_drops_the_port(header, name):
    assert host_name(header) == name


def test_allowed_hosts_default_to_loopback_names_on_loopback_only():
    assert allowed_hosts(None, "127.0.0.1") == LOOPBACK_NAMES
    assert allowed_hosts(None, "::1") == LOOPBACK_NAMES
    assert allowed_hosts(None, "0.0.0.0") is None
    assert allowed_hosts("api.example.com, [::1]", "0.0.0.0") == {"api.example.com", "::1"}
    assert allowed_hosts("*", "127.0.0.1") is None
    with pytest.raises(PipelineError, match="names no host"):
        allowed_hosts(" , ", "127.0.0.1")


def test_json_depth():
    assert not json_depth_exceeds({"inputs": [["a"]]}, 3)
    assert json_depth_exceeds({"inputs": [["a"]]}, 2)
    assert json_depth_exceeds([[[[]]]], 3)
    assert not json_depth_exceeds([[], {}, [{}]], 3)


def test_checked_json_accepts_a_request_and_returns_it_parsed():
    body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [["가"]]}}).encode()
    assert checked_json(body, 10) == json.loads(body)
    pair = b'{"inputs": ["\\ud83d\\ude00", "\\\\ud800 is how JSON escapes a surrogate"]}'
    assert checked_json(pair, 10) == {"inputs": ["😀", "\\ud800 is how JSON escapes a surrogate"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe{}", "not valid UTF-8 \\(byte 0\\)"),
        (b'{"inputs": ["SECRET', "not valid JSON: unterminated string at line 1, column 13"),
        (b"[" * 10_000 + b"]" * 10_000, "nests deeper than 10 levels"),
        (b'{"inputs": ' + b"[" * 11 + b"]" * 11 + b"}", "nests deeper than 10 levels"),
        (b'{"inputs": [' + b"1" * 5000 + b"]}", "a number with too many digits"),
        (b'["SECRET"]', "not an object"),
        (b'{"SECRET": 1}', "0 of the format keys"),
        (b'{"inputs": [], "instances": []}', "2 of the format keys"),
        (b'{"inputs": ["SECRET", "\\ud800"]}', "^row 1: text holds a lone surrogate"),
        (b'{"inputs": {"text": ["\\udfff", "SECRET"]}}', "^row 0: text holds a lone surrogate"),
        (
            b'{"dataframe_split": {"columns": ["text"], "data": [["SECRET"], ["a"], ["\\udc00"]]}}',
            "^row 2: text holds",
        ),
        (b'{"dataframe_records": [{"text": "SECRET"}, {"text": "x\\ud800"}]}', "^row 1: text"),
        (
            b'{"dataframe_split": {"columns": ["\\ud800"], "data": [["SECRET"]]}}',
            "a key or column name holds a lone surrogate",
        ),
    ],
)
def test_checked_json_rejects_with_400_without_echo(body, message):
    with pytest.raises(RequestError, match=message) as error:
        checked_json(body, 10)
    assert error.value.status == 400
    assert "SECRET" not in error.value.message


def test_csv_becomes_a_dataframe_split_of_the_text_column():
    body = '\ufeffid,text\n1,"좋다, 정말"\n\n2,""\n3,"줄\n바꿈 ""인용"""\n'.encode()
    data = [["좋다, 정말"], [""], ['줄\n바꿈 "인용"']]
    assert json.loads(csv_as_json(body)) == {"dataframe_split": {"columns": ["text"], "data": data}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no header row"),
        (b"review\nSECRET\n", "no 'text' column"),
        (b"id,text\n1,a\n2,b,SECRET\n", "CSV row 1: 3 fields, the header has 2"),
        (b'text\n"SECRET\n', "not valid CSV \\(line 2"),
        (b"text\n\xff\n", "not valid UTF-8"),
    ],
)
def test_bad_csv_is_a_400_without_echo(body, message):
    with pytest.raises(RequestError, match=message) as error:
        csv_as_json(body)
    assert error.value.status == 400
    assert "SECRET" not in error.value.message


# Real servers: the hostile-input suite.


@dataclass
class Case:
    """One request, what `serve` must answer, and what no server should send back."""

    name: str
    status: int
    body: bytes | Callable[[], bytes] = b""  # a function for the bodies of 30 MB
    headers: dict = field(default_factory=lambda: dict(JSON))
    method: str = "POST"
    path: str = "/invocations"
    message: str = ""  # in the error message (a regular expression)
    echo: str = ""  # a piece of the request that must not come back
    chunked: bool = False
    check: Callable[[list[dict]], None] | None = None  # on the predictions of a 200


def js(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def labels(expected: list[int | set]) -> Callable[[list[dict]], None]:
    def check(predictions):
        assert len(predictions) == len(expected)
        for prediction, label in zip(predictions, expected, strict=True):
            assert prediction["label"] in (label if isinstance(label, set) else {label})
            assert (
                prediction["sentiment"]
                == {1: "positive", 0: "negative", -1: "unknown"}[prediction["label"]]
            )

    return check


def same_probability(predictions):
    assert predictions[0]["probability"] == pytest.approx(predictions[1]["probability"], abs=1e-6)


SCORED = {0, 1}
TWO = ["정말 감동적이고 훌륭한 영화", "지루하고 별로였어 다시 안봐"]
HEAD = "배우들 연기가 정말 좋았고 스토리도 탄탄해서 끝까지 재밌게 봤다 " * 20  # > 120 tokens
INVISIBLE = ["\u200b", "\ufeff", "\x00", "\u200b\ufeff \x00\u2060", "\u3164", "", " \n\t "]
DEEP = 10_000
BIG = 30_000_000

CASES = [
    # The README's contract: every request form, edge-case texts.
    Case(
        "dataframe_split",
        200,
        js({"dataframe_split": {"columns": ["text"], "data": [[t] for t in TWO]}}),
        check=labels([1, 0]),
    ),
    Case(
        "dataframe_records",
        200,
        js({"dataframe_records": [{"text": t} for t in TWO]}),
        check=labels([1, 0]),
    ),
    Case("inputs", 200, js({"inputs": TWO}), check=labels([1, 0])),
    Case("inputs as columns", 200, js({"inputs": {"text": TWO}}), check=labels([1, 0])),
    Case("instances", 200, js({"instances": TWO}), check=labels([1, 0])),
    Case(
        "instances as records",
        200,
        js({"instances": [{"text": t} for t in TWO]}),
        check=labels([1, 0]),
    ),
    Case("params ignored", 200, js({"inputs": TWO, "params": {}}), check=labels([1, 0])),
    Case(
        "charset in Content-Type",
        200,
        js({"inputs": TWO}),
        {"Content-Type": "application/json; charset=utf-8"},
        check=labels([1, 0]),
    ),
    Case("chunked body", 200, js({"inputs": TWO}), chunked=True, check=labels([1, 0])),
    Case("empty batch", 200, js({"inputs": []}), check=labels([])),
    Case(
        "empty and whitespace texts",
        200,
        js({"inputs": ["", "   ", "\n\t"]}),
        check=labels([-1, -1, -1]),
    ),
    Case(
        "invisible texts",
        200,
        js({"inputs": [*INVISIBLE, "좋아요"]}),
        check=labels([-1] * 7 + [SCORED]),
    ),
    Case(
        "long text keeps its first tokens",
        200,
        js({"inputs": [HEAD, HEAD + " 지루하고 최악" * 2000]}),
        check=same_probability,
    ),
    Case(
        "emoji, Latin, digits; emoji only and Arabic are unknown",
        200,
        js(
            {
                "inputs": [
                    "😀👍 good movie",
                    "10점 만점에 10점",
                    "ㅋㅋㅋㅋ",
                    "😀👍🎬🍿",
                    "هذا الفيلم رائع",
                ]
            }
        ),
        check=labels([SCORED] * 3 + [-1, -1]),
    ),
    Case("NUL inside a text", 200, js({"inputs": ["좋아요\x00최고"]}), check=labels([SCORED])),
    Case(
        "surrogate pair escape",
        200,
        b'{"inputs": ["\\ud83d\\ude00 \\uc88b\\uc544\\uc694"]}',
        check=labels([SCORED]),
    ),
    Case(
        "a thousand texts",
        200,
        js({"inputs": [f"리뷰 {i} 정말 재밌어요" for i in range(1000)]}),
        check=labels([SCORED] * 1000),
    ),
    Case(
        "CSV",
        200,
        "text\n정말 감동적이고 훌륭한 영화\n지루하고 별로였어 다시 안봐\n".encode(),
        CSV,
        check=labels([1, 0]),
    ),
    Case(
        "CSV from pandas with an index",
        200,
        ',text\n0,정말 감동적이고 훌륭한 영화\n1,""\n'.encode(),
        CSV,
        check=labels([1, -1]),
    ),
    # Bodies MLflow cannot parse.
    Case("not JSON", 400, b"this is not json SECRET", message="not valid JSON", echo="SECRET"),
    Case("not UTF-8", 400, b'{"inputs": ["\xff\xfe"]}', message="not valid UTF-8"),
    Case(
        "UTF-8 encoded surrogate", 400, b'{"inputs": ["\xed\xa0\x80"]}', message="not valid UTF-8"
    ),
    Case("empty body", 400, b"", message="empty"),
    Case(
        "5000-digit number", 400, b'{"inputs": [' + b"7" * 5000 + b"]}", message="too many digits"
    ),
    Case("JSON list", 400, js(["SECRET"]), message="not an object", echo="SECRET"),
    Case("JSON string", 400, js("SECRET"), message="not an object", echo="SECRET"),
    Case("no format key", 400, js({"SECRET": []}), message="dataframe_split", echo="SECRET"),
    Case(
        "two format keys",
        400,
        js({"inputs": ["a"], "instances": ["a"]}),
        message="2 of the format keys",
    ),
    Case("deep list", 400, b"[" * DEEP + b"]" * DEEP, message="nests deeper"),
    Case(
        "deep inputs",
        400,
        b'{"inputs": ' + b"[" * DEEP + b'"x"' + b"]" * DEEP + b"}",
        message="nests deeper",
    ),
    Case(
        "deep object in a record",
        400,
        b'{"dataframe_records": [{"text": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}]}",
        message="nests deeper",
    ),
    Case(
        "11 levels",
        400,
        b'{"inputs": ' + b"[" * 10 + b'"x"' + b"]" * 10 + b"}",
        message="nests deeper than 10",
    ),
    Case(
        "dataframe_split not an object",
        400,
        js({"dataframe_split": "SECRET"}),
        message="dataframe_split",
        echo="SECRET",
    ),
    Case(
        "dataframe_split ragged",
        400,
        js({"dataframe_split": {"columns": ["text"], "data": [["a", "SECRET"]]}}),
        echo="SECRET",
    ),
    Case(
        "dataframe_records not a list",
        400,
        js({"dataframe_records": 5}),
        message="dataframe_records",
    ),
    # Values the model cannot score.
    Case(
        "no text column",
        400,
        js({"dataframe_records": [{"SECRET": "좋아요"}]}),
        message="text",
        echo="SECRET",
    ),
    Case(
        "no text column in inputs",
        400,
        js({"inputs": {"SECRET": ["좋아요"]}}),
        message="missing column 'text'",
        echo="SECRET",
    ),
    Case(
        "null in records",
        400,
        js({"dataframe_records": [{"text": "SECRET"}, {"text": None}]}),
        message="row 1: text must be a string, got null",
        echo="SECRET",
    ),
    Case(
        "null in inputs",
        400,
        js({"inputs": ["SECRET", None]}),
        message="row 1: text must be a string, got null",
        echo="SECRET",
    ),
    Case(
        "numbers", 400, js({"inputs": [1, 2]}), message="row 0: text must be a string, got a number"
    ),
    Case(
        "boolean",
        400,
        js({"inputs": ["a", True]}),
        message="row 1: text must be a string, got a boolean",
    ),
    Case(
        "object in a cell",
        400,
        js(
            {
                "dataframe_split": {
                    "columns": ["text"],
                    "data": [["a"], ["b"], ["c"], [{"SECRET": 1}]],
                }
            }
        ),
        message="row 3: text must be a string, got an object",
        echo="SECRET",
    ),
    Case(
        "array in a batch",
        400,
        js({"inputs": [["SECRET"], "b"]}),
        message="row 0: text must be a string, got an array",
        echo="SECRET",
    ),
    Case("NaN", 400, b'{"inputs": ["a", NaN]}', message="row 1: text must be a string"),
    Case("single string", 400, js({"inputs": "SECRET"}), echo="SECRET"),
    Case("single number", 400, js({"inputs": 5})),
    Case(
        "lone surrogate",
        400,
        b'{"inputs": ["SECRET", "\\ud800", "b"]}',
        message="row 1: text holds a lone surrogate",
        echo="SECRET",
    ),
    Case(
        "lone low surrogate in a split",
        400,
        b'{"dataframe_split": {"columns": ["text"], "data": [["a"], ["x\\udc00y"]]}}',
        message="row 1: text holds a lone surrogate",
    ),
    Case(
        "309 KB failing batch",
        400,
        js({"inputs": ["SECRET " + "가나다라" * 25] * 1000 + [None]}),
        message="row 1000",
        echo="SECRET",
    ),
    Case("many bad rows", 400, js({"inputs": [None] * 20}), message="row 4: .*; and 15 more rows"),
    # Transport: Content-Type, size, Host.
    Case("no Content-Type", 415, js(GOOD), {}, message="missing Content-Type"),
    Case(
        "text/plain",
        415,
        js(GOOD),
        {"Content-Type": "text/plain"},
        message="unsupported Content-Type",
    ),
    Case(
        "form",
        415,
        b"text=SECRET",
        {"Content-Type": "application/x-www-form-urlencoded"},
        echo="SECRET",
    ),
    Case(
        "charset latin-1",
        415,
        js(GOOD),
        {"Content-Type": "application/json; charset=latin-1"},
        message="UTF-8",
    ),
    Case(
        "unknown parameter",
        415,
        js(GOOD),
        {"Content-Type": "application/json; SECRET=1"},
        message="only charset",
        echo="SECRET",
    ),
    Case(
        "parquet",
        415,
        b"PAR1SECRET",
        {"Content-Type": "application/vnd.apache.parquet"},
        echo="SECRET",
    ),
    Case(
        "30 MB JSON",
        413,
        lambda: b'{"inputs": ["good"], "pad": "SECRET' + b"x" * BIG + b'"}',
        message="larger than",
        echo="SECRET",
    ),
    Case(
        "30 MB not JSON", 413, lambda: b"SECRET " + b"x" * BIG, message="larger than", echo="SECRET"
    ),
    Case(
        "30 MB chunked",
        413,
        lambda: b"SECRET " + b"x" * BIG,
        chunked=True,
        message="larger than",
        echo="SECRET",
    ),
    Case("Host elsewhere", 421, js(GOOD), {**JSON, "Host": "evil.example.com"}, message="Host"),
    Case("Host localhost", 200, js(GOOD), {**JSON, "Host": "localhost:5000"}, check=labels([1])),
    Case(
        "CSV without a text column",
        400,
        b"review\nSECRET\n",
        CSV,
        message="no 'text' column",
        echo="SECRET",
    ),
    Case(
        "CSV ragged row",
        400,
        b"id,text\n1,a\n2,b,SECRET\n",
        CSV,
        message="CSV row 1",
        echo="SECRET",
    ),
    Case("CSV open quote", 400, b'text\n"SECRET\n', CSV, message="not valid CSV", echo="SECRET"),
    Case("CSV not UTF-8", 400, b"text\n\xff\n", CSV, message="not valid UTF-8"),
    Case("CSV empty", 400, b"", CSV, message="no header row"),
    # texts, not missing values: scored, or unknown (-1) for a model without any feature of them
    Case("CSV null-like text", 200, b"text\nNA\nnull\n", CSV, check=labels([{-1, 0, 1}] * 2)),
    # The other endpoints.
    Case("ping", 200, method="GET", path="/ping"),
    Case("health", 200, method="GET", path="/health"),
    Case("version", 200, method="GET", path="/version"),
    Case("GET invocations", 405, method="GET"),
    Case("unknown path", 404, method="GET", path="/SECRET", echo="SECRET"),
]


@dataclass
class Answer:
    status: int | None
    text: str
    size: int
    failure: str = ""  # a transport error instead of an answer

    def leaks(self) -> list[str]:
        return sorted(set(LEAK.findall(self.text)))


def ask(base: str, case: Case) -> Answer:
    body = case.body() if callable(case.body) else case.body
    if case.chunked:
        body = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    try:
        response = requests.request(
            case.method,
            base + case.path,
            data=body if case.method == "POST" else None,
            headers=case.headers,
            timeout=120,
        )
    except requests.RequestException as exc:
        return Answer(None, "", 0, type(exc).__name__)
    return Answer(response.status_code, response.text, len(response.content))


def still_serving(base: str) -> bool:
    try:
        response = requests.post(base + "/invocations", json=GOOD, timeout=60)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.json()["predictions"][0]["label"] == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Log:
    """A server's output lines, read as they come."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = not self._thread.is_alive()  # the output is closed: nothing more will come
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if ended:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-30:]))

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def server(command: list[str], repo: Path) -> Iterator[tuple[subprocess.Popen, Log]]:
    env = {**clean_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    process = subprocess.Popen(
        command,
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process, Log(process.stdout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # mlflow models serve's uvicorn child too
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def session(leader: int) -> list[psutil.Process]:
    """The processes left in the session a server was started in (its workers included)."""
    left = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == leader:
                left.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return left


def serve_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "serve", "-m", CHAMPION, "--port", "0", *options]


def wait_ready(base: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/ping", timeout=timeout).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError("the server did not become ready")


@pytest.fixture(scope="module")
def served(sample_repo) -> Iterator[str]:
    with server(serve_command(), sample_repo) as (_, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        wait_ready(base)
        yield base


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        ({"inputs": ["a", "b"]}, ["a", "b"]),
        ({"dataframe_split": {"columns": ["text"], "data": [["a"], ["b"]]}}, ["a", "b"]),
        ({"dataframe_records": [{"text": "a"}]}, ["a"]),
        ({"inputs": []}, []),
        ({"inputs": ["a", None]}, None),  # a problem: MLflow's app and the model name it
        ({"inputs": ["\ud800"]}, None),
        ({"inputs": ["a"], "params": {}}, None),
        ({"inputs": {"text": ["a"]}}, None),
        ({"dataframe_split": {"columns": ["text", "id"], "data": [["a", 1]]}}, None),
        ({"dataframe_split": {"columns": ["text"], "data": [["a"]], "index": [0]}}, None),
        ({"dataframe_records": [{"text": "a", "id": 1}]}, None),
        ({"instances": ["a"]}, None),
    ],
)
def test_plain_texts_are_the_common_forms_of_valid_texts_only(value, texts):
    assert plain_texts(value) == texts


@pytest.mark.e2e
def test_plain_requests_get_the_answer_mlflow_s_app_gives(served):
    texts = ["정말 감동적이고 훌륭한 영화", "지루하고 별로였어", "", "\u200b", "😀 good"]
    url = f"{served}/invocations"
    for request in (
        {"inputs": texts},
        {"dataframe_records": [{"text": t} for t in texts]},
        {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}},
    ):
        direct = requests.post(url, json=request, timeout=60)
        through_mlflow = requests.post(url, json={**request, "params": {}}, timeout=60)
        assert direct.status_code == through_mlflow.status_code == 200
        assert direct.json() == through_mlflow.json()
        assert [p["label"] for p in direct.json()["predictions"]][2:4] == [-1, -1]


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_serve_answers_every_request_by_the_contract(served, case):
    answer = ask(served, case)
    assert answer.status == case.status, answer.text[:500]
    assert not answer.leaks(), answer.text[:500]
    if case.echo:
        assert case.echo not in answer.text
    if case.status >= 400:
        assert answer.size <= MAX_ERROR_BYTES
        error = json.loads(answer.text)
        assert re.search(case.message, error.get("message", error.get("detail", "")))
    elif case.check:
        case.check(json.loads(answer.text)["predictions"])
    assert still_serving(served)


def keeps_contract(case: Case, answer: Answer) -> bool | None:
    """Whether a 200 holds the predictions the contract asks for (None: no 200 expected)."""
    if case.status != 200 or case.check is None:
        return None
    try:
        case.check(json.loads(answer.text)["predictions"])
    except (AssertionError, ValueError, KeyError, TypeError):
        return False
    return True


def audit_row(base: str, case: Case) -> dict:
    answer = ask(base, case)
    return {
        "case": case.name,
        "status": answer.status,
        "contract": keeps_contract(case, answer),
        "failure": answer.failure,
        "leaks": answer.leaks(),
        "echo": bool(case.echo) and case.echo in answer.text,
        "bytes": answer.size,
        "serving": still_serving(base),
    }


@pytest.mark.e2e
def test_the_same_requests_against_mlflow_models_serve(sample_repo, served, tmp_path):
    """Records what MLflow's own server answers (docs/serving.md's table; SERVE_AUDIT=<file>
    writes the table as JSON); asserts only that it keeps serving, as it does with one worker."""
    port = free_port()
    command = ["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
    with server([*command, "-h", "127.0.0.1", "-p", str(port)], sample_repo):
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        rows = [audit_row(base, case) for case in CASES]
    ours = {case.name: ask(served, case).status for case in CASES}
    for row in rows:
        row["serve_status"] = ours[row["case"]]
    if os.environ.get("SERVE_AUDIT"):
        Path(os.environ["SERVE_AUDIT"]).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    assert all(row["serving"] for row in rows)
    assert [row["status"] for row in rows[:3]] == [200, 200, 200]


@pytest.mark.e2e
def test_two_workers_take_traffic_only_when_loaded_and_stop_on_sigterm(sample_repo):
    with server(serve_command("--workers", "2"), sample_repo) as (process, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        results: list = []
        stop = threading.Event()

        def client():
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        response = session.post(base + "/invocations", json=GOOD, timeout=300)
                        results.append(response.status_code)
                    except requests.RequestException as exc:
                        results.append(type(exc).__name__)

        thread = threading.Thread(target=client)
        thread.start()
        pings = []
        while not pings or pings[-1][0] != 200:
            response = requests.get(base + "/ping", timeout=300)
            pings.append((response.status_code, response.text))
            time.sleep(0.2)
        # Each worker logs "ready" before it counts as ready; /ping said 200, so both have.
        log.wait_for(r"worker 0 \(pid \d+\) ready", 2)
        log.wait_for(r"worker 1 \(pid \d+\) ready", 2)
        for status, text in pings[:-1]:
            assert status == 503 and re.search(r"[01] of 2 workers", text)
        time.sleep(1)
        stop.set()
        thread.join()
        assert results and set(results) == {200}, results

        # A worker that dies is replaced; the other one answers meanwhile.
        pids = {int(m) for m in re.findall(r"worker \d \(pid (\d+)\) ready", log.text())}
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        log.wait_for(r"worker \d exited with code -9; restarting", 30)
        assert still_serving(base)
        assert requests.get(base + "/ping", timeout=60).status_code == 503
        wait_ready(base)
        assert still_serving(base)

        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        psutil.wait_procs(workers, timeout=10)
        assert not session(process.pid)
        log.wait_for("^stopped$", 5)


@pytest.mark.e2e
def test_a_model_that_does_not_load_stops_the_server(sample_repo, tmp_path):
    model = tmp_path / "model"
    env = {**clean_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{sample_repo / 'mlflow.db'}"}
    script = (
        f"import mlflow; mlflow.artifacts.download_artifacts({CHAMPION!r}, dst_path={str(model)!r})"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    for bundle in (model / "artifacts").glob("*/bundle.json"):
        bundle.write_text("{not json", encoding="utf-8")
    command = [sys.executable, "-m", "pipeline", "serve", "-m", str(model), "--port", "0"]
    with server(command, sample_repo) as (process, log):
        assert process.wait(timeout=300) == 1
        log.wait_for(r"^error: worker 0 exited with code 1 before it had loaded the model", 5)
        time.sleep(2)
        assert not session(process.pid)


@pytest.mark.e2e
def test_an_unknown_model_is_a_one_line_error(sample_repo):
    command = serve_command()
    command[command.index(CHAMPION)] = "models:/korean-sentiment@nope"
    with server(command, sample_repo) as (process, log):
        assert process.wait(timeout=120) == 1
        log.wait_for(r"^error: cannot load model models:/korean-sentiment@nope: .*alias nope", 5)
        assert "Traceback" not in log.text()


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "serve", "-m", CHAMPION, "--port", str(port)],
            cwd=Path(__file__).resolve().parents[1],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
