import http.server
import os
import threading

import pytest

from pipeline.errors import PipelineError
from pipeline.tracking_uri import HTTP_DEFAULTS, check_tracking_uri, redacted
from tests.helpers import free_port


def test_redacted_hides_the_user_and_the_password():
    assert redacted("postgresql+psycopg://u:s3cret@db:5432/m") == "postgresql+psycopg://db:5432/m"
    assert redacted("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_closed_port_is_one_error_naming_the_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PipelineError, match=f"tracking server {uri} is unreachable"):
        check_tracking_uri(uri)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"  # the user's, kept
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_an_unreachable_database_is_one_error_without_the_password():
    uri = f"postgresql+psycopg://mlflow:s3cret@127.0.0.1:{free_port()}/mlflow"
    with pytest.raises(PipelineError) as raised:
        check_tracking_uri(uri)
    message = str(raised.value)
    assert message.startswith("tracking database postgresql+psycopg://127.0.0.1:")
    assert "unreachable" in message and "s3cret" not in message and "\n" not in message


def test_an_unknown_scheme_is_one_error():
    with pytest.raises(PipelineError, match="unknown scheme 'htp'"):
        check_tracking_uri("htp://127.0.0.1:5000")


def test_a_server_that_is_not_mlflow_is_one_error():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(PipelineError, match="does not answer like an MLflow tracking server"):
            check_tracking_uri(uri)
    finally:
        server.shutdown()
        server.server_close()
