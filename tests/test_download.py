import fcntl
import gzip
import hashlib
import http.server
import subprocess
import sys
import threading
import time
import typing

import pytest

from pipeline.download import (
    NSMC_FILES,
    RemoteFile,
    fetch,
    fetch_nsmc,
    part_files,
    remove_stale_parts,
    verify_local,
)
from pipeline.errors import PipelineError
from tests.helpers import REPO, clean_env

PAYLOAD = "id\tdocument\tlabel\n1\t재밌다\t1\n".encode() * 200
SHA = hashlib.sha256(PAYLOAD).hexdigest()
SIZE = len(PAYLOAD)
# Served in two halves with a pause between them, for the killed download.
BIG = "id\tdocument\tlabel\n2\t지루하다\t0\n".encode() * 8000
BIG_SHA = hashlib.sha256(BIG).hexdigest()
ENDLESS_CAP = 64 << 20  # the endless body stops here (a download that never stops fails)


class Handler(http.server.BaseHTTPRequestHandler):
    hits: typing.ClassVar[list[str]] = []
    sent: typing.ClassVar[dict[str, int]] = {}
    release = threading.Event()  # lets the paused half of BIG go
    finished = threading.Event()  # the endless body's handler returned

    def do_GET(self):
        Handler.hits.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name == "broken.txt":
            # Promise more bytes than are sent, then hang up.
            self._head(SIZE * 2)
            self.wfile.write(PAYLOAD)
            self.wfile.flush()
            self.connection.close()
        elif name == "missing.txt":
            self.send_error(404)
        elif name == "announces-more.txt":
            self._head(SIZE * 10)
            self._send(PAYLOAD * 10)
        elif name == "endless.txt":
            self._head(None)  # HTTP/1.0 without a length: the body ends when the server hangs up
            sent = 0
            try:
                while sent < ENDLESS_CAP:
                    self.wfile.write(PAYLOAD)
                    sent += SIZE
            except OSError:
                pass
            Handler.sent[name] = sent
            Handler.finished.set()
        elif name == "short.txt":
            self._head(None)
            self._send(PAYLOAD[: SIZE // 2])
        elif name == "gzipped.txt":
            body = gzip.compress(PAYLOAD)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._send(body)
        elif name == "paused.txt":
            self._head(len(BIG))
            self._send(BIG[: len(BIG) // 2])
            Handler.release.wait(60)
            self._send(BIG[len(BIG) // 2 :])
        elif name == "big.txt":
            self._head(len(BIG))
            self._send(BIG)
        else:
            self._head(SIZE)
            self._send(PAYLOAD)

    def _head(self, length: int | None):
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, body: bytes):
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            pass  # the client went away

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.hits = []
    Handler.sent = {}
    Handler.release = threading.Event()
    Handler.finished = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_downloads_verifies_and_caches(server, tmp_path):
    dest = tmp_path / "cache" / "ratings_train.txt"
    assert fetch(f"{server}/ratings_train.txt", dest, SHA, SIZE) == dest
    assert dest.read_bytes() == PAYLOAD
    fetch(f"{server}/ratings_train.txt", dest, SHA, SIZE)
    assert len(Handler.hits) == 1  # the second call found the verified file
    assert list(dest.parent.iterdir()) == [dest]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "ratings_train.txt"
    with pytest.raises(PipelineError, match="checksum mismatch"):
        fetch(f"{server}/ratings_train.txt", dest, "0" * 64, SIZE)
    assert list(tmp_path.iterdir()) == []


def test_broken_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(PipelineError, match="download of .*broken.txt failed: .*nothing was saved"):
        fetch(f"{server}/broken.txt", tmp_path / "broken.txt", SHA, SIZE * 2)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_clear(server, tmp_path):
    with pytest.raises(PipelineError, match="download of .*missing.txt failed: 404"):
        fetch(f"{server}/missing.txt", tmp_path / "missing.txt", SHA, SIZE)
    assert list(tmp_path.iterdir()) == []


def test_announced_length_other_than_the_size_is_refused_up_front(server, tmp_path):
    with pytest.raises(PipelineError) as caught:
        fetch(f"{server}/announces-more.txt", tmp_path / "f.txt", SHA, SIZE)
    assert str(caught.value) == (
        f"download of {server}/announces-more.txt refused: the server announces "
        f"{SIZE * 10:,} bytes, the file has {SIZE:,}; nothing was saved"
    )
    assert list(tmp_path.iterdir()) == []


def test_stream_stops_as_soon_as_it_passes_the_size(server, tmp_path):
    with pytest.raises(PipelineError) as caught:
        fetch(f"{server}/endless.txt", tmp_path / "f.txt", SHA, SIZE)
    assert str(caught.value) == (
        f"download of {server}/endless.txt stopped: the server sent more than the {SIZE:,} bytes "
        "of the file; nothing was saved"
    )
    assert list(tmp_path.iterdir()) == []
    assert Handler.finished.wait(60)
    assert Handler.sent["endless.txt"] < ENDLESS_CAP  # the client hung up, the server stopped


def test_short_stream_without_a_length(server, tmp_path):
    with pytest.raises(PipelineError, match=f"ended after {SIZE // 2:,} of {SIZE:,} bytes"):
        fetch(f"{server}/short.txt", tmp_path / "f.txt", SHA, SIZE)
    assert list(tmp_path.iterdir()) == []


def test_compressed_transfer_is_measured_after_decoding(server, tmp_path):
    # The announced length of a gzip body is not the file's size (raw.githubusercontent.com
    # compresses text when asked to, and requests asks).
    dest = fetch(f"{server}/gzipped.txt", tmp_path / "f.txt", SHA, SIZE)
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_cached_file_is_replaced(server, tmp_path):
    dest = tmp_path / "ratings_train.txt"
    dest.write_bytes(b"truncated")
    fetch(f"{server}/ratings_train.txt", dest, SHA, SIZE)
    assert dest.read_bytes() == PAYLOAD


def test_fetch_nsmc_gets_both_files(server, tmp_path):
    files = tuple(RemoteFile(f.name, SHA, SIZE) for f in NSMC_FILES)
    paths = fetch_nsmc(tmp_path, base_url=server, files=files)
    assert sorted(paths) == ["ratings_test.txt", "ratings_train.txt"]
    assert all(p.read_bytes() == PAYLOAD for p in paths.values())


def test_official_checksums_are_pinned():
    assert [f.sha256[:8] for f in NSMC_FILES] == ["e03b7d14", "8ac9f640"]


KILLED_FETCH = (
    "import sys; from pathlib import Path; from pipeline.download import fetch; "
    "fetch(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))"
)


def test_killed_download_leaves_nothing_once_the_next_fetch_ran(server, tmp_path):
    dest = tmp_path / "ratings_train.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_FETCH, f"{server}/paused.txt", dest, BIG_SHA, str(len(BIG))],
        cwd=REPO,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size for p in part_files(dest)):
            assert process.poll() is None, "the download ended before it was killed"
            assert time.monotonic() < deadline, "the download never started writing"
            time.sleep(0.05)
    finally:
        process.kill()  # SIGKILL: no finally block, no clean-up in the process
        process.wait()
    Handler.release.set()
    [left] = part_files(dest)  # what the kill left behind
    assert not dest.exists()
    assert fetch(f"{server}/big.txt", dest, BIG_SHA, len(BIG)).read_bytes() == BIG
    assert not left.exists()
    assert list(tmp_path.iterdir()) == [dest]


def test_a_running_download_keeps_its_temporary_file(tmp_path):
    dest = tmp_path / "ratings_train.txt"
    running, killed = tmp_path / ".ratings_train.txt.abc.tmp", tmp_path / ".ratings_train.txt.x.tmp"
    killed.write_bytes(b"partial")
    other = tmp_path / ".ratings_test.txt.abc.tmp"  # another file's download: not ours to remove
    other.write_bytes(b"partial")
    with running.open("wb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert remove_stale_parts(dest) == [killed]
        assert running.exists()
    assert remove_stale_parts(dest) == [running]
    assert sorted(tmp_path.iterdir()) == [other]
    assert remove_stale_parts(tmp_path / "absent" / "x.txt") == []


def test_verify_local_accepts_the_pinned_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(PAYLOAD)
    verify_local(tmp_path, (RemoteFile("a.txt", SHA, SIZE),))


def test_verify_local_names_file_expected_and_actual(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"rebuilt")
    actual = hashlib.sha256(b"rebuilt").hexdigest()
    with pytest.raises(PipelineError) as caught:
        verify_local(tmp_path, (RemoteFile("a.txt", SHA, SIZE),), hint="set x: false")
    assert str(caught.value) == (
        f"{tmp_path / 'a.txt'} is not the pinned file: expected sha256 {SHA}, got {actual}; "
        "set x: false"
    )


def test_verify_local_missing_file(tmp_path):
    with pytest.raises(PipelineError, match=r"data file not found: .*ratings_train\.txt"):
        verify_local(tmp_path)
