"""`serve`'s guard (pipeline/serve/guard.py): the common request forms it scores itself, then the
hostile-input suite against a real server process on loopback, and the same requests against
`mlflow models serve` for comparison."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from pipeline.serve.guard import plain_texts, text_checker

CHAMPION = "models:/korean-sentiment@champion"
GOOD = {"inputs": ["정말 감동적이고 훌륭한 영화"]}
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
# What no answer may hold: a stack trace, a file path of the server, a source file name.
LEAKS = ("Traceback", "stack_trace", "/work/", "/tmp/", "/home/", "/usr/", "site-packages", ".py")
LEAK = re.compile("|".join(re.escape(leak) + (r"\b" if leak == ".py" else "") for leak in LEAKS))
MAX_ERROR_BYTES = 1000


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
    # One prediction per row, in every request form: a cell holding an array or an object is
    # that row's error, and the table is the text column only.
    *[
        Case(f"array cell in {form}", 400, js(request), message="row 0: .*got an array")
        for form, request in (
            ("dataframe_split", {"dataframe_split": {"columns": ["text"], "data": [[["a", "b"]]]}}),
            ("dataframe_records", {"dataframe_records": [{"text": ["a", "b"]}]}),
            ("instances", {"instances": [["a", "b"]]}),
            ("instances records", {"instances": [{"text": ["a", "b"]}]}),
            ("inputs", {"inputs": [["a", "b", "c"]]}),
            ("inputs columns", {"inputs": {"text": [["a", "b"]]}}),
            ("inputs with params", {"inputs": [["a", "b"]], "params": {}}),
        )
    ],
    *[
        Case(f"object cell in {form}", 400, js(request), message="row 0: .*got an object")
        for form, request in (
            ("dataframe_split", {"dataframe_split": {"columns": ["text"], "data": [[{"a": 1}]]}}),
            ("dataframe_records", {"dataframe_records": [{"text": {"a": 1}}]}),
            ("inputs columns", {"inputs": {"text": [{"a": 1}]}}),
        )
    ],
    Case(
        "duplicated column",
        400,
        js({"dataframe_split": {"columns": ["text", "text"], "data": [["a", "b"]]}}),
        message="'text' appears 2 times",
    ),
    Case(
        "extra column in a split",
        400,
        js({"dataframe_split": {"columns": ["text", "SECRET"], "data": [["a", 1]]}}),
        message="1 column besides 'text'",
        echo="SECRET",
    ),
    Case(
        "extra column in records",
        400,
        js({"dataframe_records": [{"text": "a", "SECRET": 1}]}),
        message="besides 'text'",
        echo="SECRET",
    ),
    Case(
        "extra column in inputs",
        400,
        js({"inputs": {"text": ["a"], "SECRET": [1]}}),
        message="besides 'text'",
        echo="SECRET",
    ),
    Case(
        "one text with params",
        200,
        js({"inputs": ["좋아요"], "params": {}}),
        check=labels([SCORED]),
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
    Case("unknown path", 404, method="GET", path="/SECRET", echo="SECRET", message="no such path"),
    *[
        Case(f"{method} {path}", 404, method=method, path=path, message="no such path")
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/ping/", "/")
        for method in ("GET", "POST")
    ],
    *[
        Case(f"HEAD {path}", 200, method="HEAD", path=path)
        for path in ("/ping", "/health", "/version")
    ],
    Case("HEAD invocations", 405, method="HEAD"),
    Case(
        "gzip body",
        415,
        b"\x1f\x8bSECRET",
        {**JSON, "Content-Encoding": "gzip"},
        echo="SECRET",
        message="Content-Encoding",
    ),
    Case(
        "br label on JSON",
        415,
        js(GOOD),
        {**JSON, "Content-Encoding": "br"},
        message="Content-Encoding",
    ),
    Case(
        "identity encoding",
        200,
        js(GOOD),
        {**JSON, "Content-Encoding": "identity"},
        check=labels([1]),
    ),
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


@pytest.fixture(scope="module")
def served(sample_repo, servers) -> Iterator[str]:
    with servers.start(servers.serve_command(), sample_repo) as (_, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        servers.wait_ready(base)
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


ROWS = [
    ({"dataframe_split": {"columns": ["text"], "data": [["a"], ["b"]]}}, None),
    ({"dataframe_records": [{"text": "a"}, {"text": "b"}]}, None),
    ({"instances": ["a", "b"]}, None),
    ({"instances": [{"text": "a"}]}, None),
    ({"inputs": ["a"]}, None),
    ({"inputs": {"text": ["a", "b"]}}, None),
    ({"inputs": {"text": "a"}}, None),
    ({"dataframe_split": {"columns": ["text"], "data": [[["a", "b", "c"]]]}}, "row 0: .*array"),
    ({"dataframe_split": {"columns": ["text"], "data": [["a"], [{"k": 1}]]}}, "row 1: .*object"),
    ({"dataframe_records": [{"text": [["a"]]}]}, "row 0: .*array"),
    ({"instances": [["a", "b"]]}, "row 0: .*array"),
    ({"instances": [{"text": {"k": 1}}]}, "row 0: .*object"),
    ({"inputs": [["a", "b", "c"]]}, "row 0: .*array"),
    ({"inputs": {"text": [["a", "b"]]}}, "row 0: .*array"),
    ({"dataframe_split": {"columns": ["text", "text"], "data": [["a", "b"]]}}, "2 times"),
    ({"dataframe_split": {"columns": ["text", "id"], "data": [["a", 1]]}}, "besides 'text'"),
    ({"dataframe_records": [{"text": "a", "id": 1}]}, "besides 'text'"),
    ({"inputs": {"text": ["a"], "id": [1]}}, "besides 'text'"),
]


@pytest.mark.parametrize(("request_body", "problem"), ROWS)
def test_the_check_sees_every_input_form_as_mlflow_parses_it(request_body, problem):
    """One text per row in every form, as MLflow's server parses it (before its schema
    enforcement, which would make one row of a list)."""
    from mlflow.pyfunc import scoring_server

    from pipeline.pyfunc import SIGNATURE, InputError

    data, _ = scoring_server._split_data_and_params(json.dumps(request_body))
    parsed = scoring_server.infer_and_parse_data(data, SIGNATURE.inputs)
    check = text_checker()
    if problem is None:
        check(parsed)
    else:
        with pytest.raises(InputError, match=problem):
            check(parsed)


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
def test_serve_answers_every_request_by_the_contract(served, servers, case):
    answer = ask(served, case)
    assert answer.status == case.status, answer.text[:500]
    assert not answer.leaks(), answer.text[:500]
    if case.echo:
        assert case.echo not in answer.text
    if case.method == "HEAD":
        assert answer.size == 0
    elif case.status >= 400:
        assert answer.size <= MAX_ERROR_BYTES
        error = json.loads(answer.text)
        assert re.search(case.message, error.get("message", error.get("detail", "")))
    elif case.check:
        case.check(json.loads(answer.text)["predictions"])
    assert servers.still_serving(served)


def keeps_contract(case: Case, answer: Answer) -> bool | None:
    """Whether a 200 holds the predictions the contract asks for (None: no 200 expected)."""
    if case.status != 200 or case.check is None:
        return None
    try:
        case.check(json.loads(answer.text)["predictions"])
    except (AssertionError, ValueError, KeyError, TypeError):
        return False
    return True


def audit_row(base: str, case: Case, still_serving: Callable[[str], bool]) -> dict:
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
def test_the_same_requests_against_mlflow_models_serve(sample_repo, served, servers, tmp_path):
    """Records what MLflow's own server answers (docs/serving.md's table; SERVE_AUDIT=<file>
    writes the table as JSON); asserts only that it keeps serving, as it does with one worker."""
    port = servers.free_port()
    command = ["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
    with servers.start([*command, "-h", "127.0.0.1", "-p", str(port)], sample_repo):
        base = f"http://127.0.0.1:{port}"
        servers.wait_ready(base)
        rows = [audit_row(base, case, servers.still_serving) for case in CASES]
    ours = {case.name: ask(served, case).status for case in CASES}
    for row in rows:
        row["serve_status"] = ours[row["case"]]
    if os.environ.get("SERVE_AUDIT"):
        Path(os.environ["SERVE_AUDIT"]).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    assert all(row["serving"] for row in rows)
    assert [row["status"] for row in rows[:3]] == [200, 200, 200]
