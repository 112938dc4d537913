"""serve's HTTP protocol (pipeline/serve/protocol.py): uvicorn on a loopback socket, in a thread,
with short limits, in front of a small ASGI app that echoes the size of the body it read. Raw
sockets send what `requests` cannot: stalled headers, bodies that never end, HTTP/0.9."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.serve.protocol import ConnectionLimits, protocol_class

LIMITS = ConnectionLimits(request_seconds=2, keep_alive_seconds=1, max_requests=3)
SLACK = 1.5  # seconds allowed beyond a limit


async def sized(scope, receive, send):
    """Answers 200 with the number of body bytes it read."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(http_class) -> Iterator[tuple[str, int]]:
    """uvicorn with `http_class` in a thread, on a loopback socket, in front of `sized`."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(
        sized,
        lifespan="off",
        log_level="warning",
        http=http_class,
        timeout_keep_alive=LIMITS.keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with serving(protocol_class(LIMITS)) as found:
        yield found


def connect(address) -> socket.socket:
    conn = socket.create_connection(address, timeout=LIMITS.request_seconds + 10)
    return conn


def until_closed(conn: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start, chunks = time.monotonic(), []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - start


POST = b"POST / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "sent",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # headers never end
        b"GET /\r\n",  # HTTP/0.9
        POST + b"Content-Length: 100\r\n\r\n" + b"x" * 10,  # a short body
        POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",  # no last chunk
    ],
    ids=["unfinished headers", "HTTP/0.9", "short body", "unterminated chunked"],
)
def test_a_request_that_never_arrives_whole_gets_408_and_is_closed(address, sent):
    with connect(address) as conn:
        conn.sendall(sent)
        answer, took = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert took < LIMITS.request_seconds + SLACK


def test_an_idle_connection_is_closed_after_the_keep_alive_time(address):
    with connect(address) as conn:
        answer, took = until_closed(conn)
    assert answer == b""
    assert took < LIMITS.keep_alive_seconds + SLACK
    with connect(address) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, took = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n0")
    assert took < LIMITS.keep_alive_seconds + SLACK


def test_a_byte_at_a_time_does_not_keep_a_request_open(address):
    with connect(address) as conn:
        start = time.monotonic()
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(0.25)
        except OSError:
            pass  # closed by the server while we were still sending
        answer, _ = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - start < LIMITS.request_seconds + SLACK


def test_the_last_answer_allowed_on_a_connection_closes_it(address):
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    with connect(address) as conn:
        conn.sendall(request * LIMITS.max_requests)  # pipelined
        answer, _ = until_closed(conn)
    assert answer.count(b"HTTP/1.1 200 ") == LIMITS.max_requests
    assert answer.lower().count(b"connection: close") == 1


def test_stalled_connections_do_not_starve_a_normal_client(address):
    stalled = []
    for _ in range(250):
        conn = connect(address)
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        stalled.append(conn)
    times = []
    try:
        for _ in range(50):
            start = time.monotonic()
            with connect(address) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer, _ = until_closed(conn)
            times.append(time.monotonic() - start)
            assert answer.startswith(b"HTTP/1.1 200 ")
        times.sort()
        assert times[int(len(times) * 0.99) - 1] < 1.0
        ended = [until_closed(conn)[0][:12] for conn in stalled]
        assert set(ended) == {b"HTTP/1.1 408"}
    finally:
        for conn in stalled:
            conn.close()


def test_the_default_arrival_time_is_at_most_30_seconds():
    assert 0 < ConnectionLimits().request_seconds <= 30


def test_accepted_connections_send_without_waiting_for_acks():
    """TCP_NODELAY on the server's side of each connection (seen from inside the protocol)."""
    found = []

    class Recording(protocol_class(LIMITS)):
        def connection_made(self, transport):
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            found.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    with serving(Recording) as address, connect(address) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer, _ = until_closed(conn)
    assert answer.startswith(b"HTTP/1.1 200")
    assert found == [1]


def test_no_delay_leaves_a_unix_socket_alone(tmp_path):
    from pipeline.serve.protocol import no_delay

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name):
            return self.sock

    with socket.socket(socket.AF_UNIX) as unix:
        no_delay(Transport(unix))  # no TCP option on a Unix socket: nothing set, no error
    no_delay(Transport(None))
    with socket.socket() as tcp:
        no_delay(Transport(tcp))
        assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
