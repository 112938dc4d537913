"""`serve`'s request checks (pipeline/serve/checks.py) as pure functions, without a server."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import PipelineError
from pipeline.serve.checks import (
    LOOPBACK_NAMES,
    RequestError,
    absolute_form,
    allowed_hosts,
    body_kind,
    checked_json,
    csv_as_json,
    host_name,
    identity_encoding,
    json_depth_exceeds,
    refusal,
)


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


@pytest.mark.parametrize("value", [None, "", "identity", " Identity "])
def test_a_body_sent_as_is_is_read(value):
    identity_encoding(value)


@pytest.mark.parametrize("value", ["gzip", "br", "deflate", "identity, gzip", "x-SECRET"])
def test_a_compressed_body_is_a_415(value):
    with pytest.raises(RequestError, match="unsupported Content-Encoding") as error:
        identity_encoding(value)
    assert error.value.status == 415
    assert "SECRET" not in error.value.message


def scope(path="/ping", method="GET", version="1.1", headers=(), query=b"") -> dict:
    return {
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "method": method,
        "http_version": version,
        "headers": list(headers),
    }


@pytest.mark.parametrize(
    ("request_scope", "status"),
    [
        (scope(), None),
        (scope("/invocations", "POST"), None),
        (scope("/version", "HEAD"), None),
        (scope(version="2"), 400),
        (scope(version="0.9"), 400),
        (scope(query=b"a" * 9000), 414),
        (scope(headers=[(b"x-pad", b"a" * 40_000)]), 431),
        (scope("/docs"), 404),
        (scope("/openapi.json"), 404),
        (scope("/ping", "POST"), 405),
        (scope("/invocations", "GET"), 405),
        (scope("/invocations", "HEAD"), 405),
    ],
)
def test_refusal_is_the_request_line_s_answer(request_scope, status):
    refused = refusal(request_scope)
    assert (refused and refused[0]) == status


def test_an_absolute_uri_target_is_its_path_and_its_authority_the_host():
    served, host = absolute_form(scope("http://localhost:5000/ping"), "evil.example")
    assert (served["path"], host) == ("/ping", "localhost:5000")
    assert absolute_form(scope(), "a:1")[1] == "a:1"
    assert absolute_form(scope(version="1.0"), None)[1] is None  # HTTP/1.0 names no host
    assert absolute_form(scope(), None)[1] == ""  # HTTP/1.1 must
