import hashlib
import http.server
import threading
import typing

import pytest

from pipeline.download import NSMC_FILES, RemoteFile, fetch, fetch_nsmc
from pipeline.errors import PipelineError

PAYLOAD = "id\tdocument\tlabel\n1\t재밌다\t1\n".encode() * 200


class Handler(http.server.BaseHTTPRequestHandler):
    hits: typing.ClassVar[list[str]] = []

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path.endswith("broken.txt"):
            # Promise more bytes than are sent, then hang up.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 2))
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.wfile.flush()
            self.connection.close()
            return
        if self.path.endswith("missing.txt"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_downloads_verifies_and_caches(server, tmp_path):
    dest = tmp_path / "cache" / "ratings_train.txt"
    assert fetch(f"{server}/ratings_train.txt", dest, SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    fetch(f"{server}/ratings_train.txt", dest, SHA)
    assert len(Handler.hits) == 1  # the second call found the verified file


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "ratings_train.txt"
    with pytest.raises(PipelineError, match="checksum mismatch"):
        fetch(f"{server}/ratings_train.txt", dest, "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_broken_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(PipelineError, match="failed|mismatch"):
        fetch(f"{server}/broken.txt", tmp_path / "broken.txt", SHA)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_clear(server, tmp_path):
    with pytest.raises(PipelineError, match="download of .*missing.txt failed: 404"):
        fetch(f"{server}/missing.txt", tmp_path / "missing.txt", SHA)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cached_file_is_replaced(server, tmp_path):
    dest = tmp_path / "ratings_train.txt"
    dest.write_bytes(b"truncated")
    fetch(f"{server}/ratings_train.txt", dest, SHA)
    assert dest.read_bytes() == PAYLOAD


def test_fetch_nsmc_gets_both_files(server, tmp_path):
    files = tuple(RemoteFile(f.name, SHA, len(PAYLOAD)) for f in NSMC_FILES)
    paths = fetch_nsmc(tmp_path, base_url=server, files=files)
    assert sorted(paths) == ["ratings_test.txt", "ratings_train.txt"]
    assert all(p.read_bytes() == PAYLOAD for p in paths.values())


def test_official_checksums_are_pinned():
    assert [f.sha256[:8] for f in NSMC_FILES] == ["e03b7d14", "8ac9f640"]
