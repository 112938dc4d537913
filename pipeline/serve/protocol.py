"""The HTTP/1.1 protocol the workers speak: uvicorn's h11 protocol with the time limits it lacks.

uvicorn closes an idle kept-alive connection only after a first answer, and no timer runs while
a request arrives: a client that opens a connection and sends nothing, sends its headers a byte
at a time (slowloris), stops inside a chunked body or sends less than its Content-Length holds
a connection and its file descriptor for ever. Here:

- a request must arrive whole (headers and body) within `request_seconds` of the connection
  opening or of the previous answer; else the server answers 408 and closes the connection (an
  HTTP/0.9 request line, which never ends a header block, ends the same way);
- a connection with nothing sent is closed after `keep_alive_seconds`, from its opening as from
  each answer;
- the `max_requests`-th answer on a connection says `Connection: close`, so clients reconnect
  and spread over the workers again (after a worker restarts, kept-alive clients would stay on
  the survivors)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass

CLOSE_HEADER = (b"connection", b"close")


@dataclass(frozen=True)
class ConnectionLimits:
    request_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_requests: int = 100


def closing_answer(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP answer with MLflow's error shape, for a connection about to be closed."""
    body = json.dumps({"error_code": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


TIMEOUT_ANSWER = closing_answer(
    408,
    "Request Timeout",
    "REQUEST_TIMEOUT",
    "the request did not arrive whole within this server's time limit",
)
INVALID_ANSWER = closing_answer(
    400, "Bad Request", "BAD_REQUEST", "the request is not valid HTTP/1.1 (or HTTP/1.0)"
)


def no_delay(transport) -> None:
    """Nagle's algorithm off on a TCP connection: an answer's head and body, two writes, leave
    at once instead of the body waiting for the client's (delayed) ACK of the head. asyncio's
    own transports do this already; it is set here whatever the event loop."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def protocol_class(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with `limits`; pass it as uvicorn.Config(http=...)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineProtocol(H11Protocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.deadline: asyncio.TimerHandle | None = None
            self.requests = 0

        def connection_made(self, transport):
            super().connection_made(transport)
            no_delay(transport)
            self.arm()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc):
            self.disarm()
            super().connection_lost(exc)

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self.arm()

        def handle_events(self):
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle and self.cycle is not None:
                self.requests += 1
                if self.requests >= limits.max_requests:
                    self.cycle.keep_alive = False
                    self.headers.append(CLOSE_HEADER)  # uvicorn answers with the same header

        def send_400_response(self, msg: str):
            # uvicorn's answer to what h11 cannot parse is text/plain: ours is MLflow's shape.
            self.disarm()
            if not self.transport.is_closing():
                self.transport.write(INVALID_ANSWER)
                self.transport.close()

        def arm(self):
            self.disarm()
            self.deadline = self.loop.call_later(limits.request_seconds, self.on_deadline)

        def disarm(self):
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def on_deadline(self):
            self.deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                if cycle.response_started or not cycle.more_body:
                    return  # the request arrived whole; the scoring time limit holds from here
                cycle.disconnected = True  # the app reading the body gets http.disconnect
                cycle.message_event.set()
            self.transport.write(TIMEOUT_ANSWER)
            self.transport.close()

    return DeadlineProtocol
