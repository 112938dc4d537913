"""The server's worker processes, and what the parent prepares for them: the listening socket
they inherit and a local folder holding the model. A worker loads the model, scores its input
example, and only then accepts connections."""

from __future__ import annotations

import csv
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.serve.checks import Limits
from pipeline.serve.guard import build_app, safe_error_type, text_checker
from pipeline.serve.protocol import ConnectionLimits, protocol_class
from pipeline.serve.served import Served

BACKLOG = 2048
SHUTDOWN_SECONDS = 30  # a worker still running this long after SIGTERM is killed
WATCH_SECONDS = 0.2  # how often a worker looks whether the parent published another version

log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class WorkerSettings:
    served: Served
    limits: Limits
    parent_pid: int
    published: str = ""  # the file the parent writes the version to switch to into
    log_level: str = "info"
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


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


@dataclass(frozen=True)
class Shared:
    """What the parent shares with its workers: per worker, whether it is ready and the newest
    generation it holds (minus that generation when it failed to load); the generation the
    parent published for the workers to load, and the one every request is answered by."""

    ready: Any  # RawArray("b")
    loaded: Any  # RawArray("i")
    published: Any  # RawValue("i")
    active: Any  # RawValue("i")


class Switch:
    """The worker's ASGI app: the Guard of the active generation. The parent makes a generation
    active once every worker holds it, so no client sees the old version after the new one; a
    request runs to its end on the Guard it started on."""

    def __init__(self, guard, generation: int, active):
        self.guards = {generation: guard}
        self.generation = generation
        self.active = active

    async def __call__(self, scope, receive, send):
        wanted = self.active.value
        if wanted != self.generation and wanted in self.guards:
            self.generation = wanted
            for old in [g for g in list(self.guards) if g < wanted]:  # the loader adds keys
                self.guards.pop(old, None)
        return await self.guards[self.generation](scope, receive, send)


def follow_published(index: int, switch: Switch, settings: WorkerSettings, shared, build):
    """A thread: when the parent publishes another version, load and warm it up here, at low
    CPU priority, and hand it to the Switch; one that fails leaves the old one serving."""
    if sys.platform == "linux":  # where a thread's id names it to setpriority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    current = settings.served
    while True:
        time.sleep(WATCH_SECONDS)
        if shared.published.value == current.generation:
            continue
        wanted = Served.read(Path(settings.published))
        try:
            model = load_model(Path(wanted.model_dir))
            warm_up(model, Path(wanted.model_dir))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).strip()[:200]}".splitlines()[0]
            log.error(
                "worker %d: version %s failed to load (%s); still serving version %s",
                *(index, wanted.version, reason, current.version),
            )
            shared.loaded[index] = -wanted.generation
        else:
            switch.guards[wanted.generation] = build(model, wanted)
            shared.loaded[index] = wanted.generation
            log.info("worker %d loaded version %s", index, wanted.version)
        current = wanted


def run_worker(index: int, sock: socket.socket, settings: WorkerSettings, shared: Shared) -> None:
    """One worker process: load, warm up, then serve the inherited socket until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    exit_with_parent(settings.parent_pid)
    import uvicorn

    model_dir = Path(settings.served.model_dir)
    safe_error_type()
    check = text_checker()  # imported from this package before load_model drops its modules
    model = load_model(model_dir)
    warm_up(model, model_dir)
    csv.field_size_limit(settings.limits.max_body_bytes)
    ready = shared.ready

    def build(model, served: Served):
        readiness = lambda: (sum(ready), len(ready))  # noqa: E731
        return build_app(model, settings.limits, readiness, check, served.public())

    app = Switch(build(model, settings.served), settings.served.generation, shared.active)
    if settings.published:
        args = (index, app, settings, shared, build)
        threading.Thread(target=follow_published, args=args, daemon=True, name="follow").start()

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
        http=protocol_class(settings.connections),
        timeout_keep_alive=settings.connections.keep_alive_seconds,
        log_level=settings.log_level,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS - 5,
    )
    Server(config).run(sockets=[sock])


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


def local_folder(uri: str) -> Path | None:
    """The model folder a local `uri` names (None for a remote URI), or a PipelineError naming
    what is wrong with it: nothing is copied from a folder that is not a model."""
    local = local_path(uri)
    if local is None:
        return None
    if (local / "MLmodel").is_file():
        return local.resolve()
    if not local.exists():
        raise PipelineError(f"cannot load model {uri}: {local} does not exist")
    if not local.is_dir():
        raise PipelineError(f"cannot load model {uri}: {local} is a file, not a model folder")
    raise PipelineError(f"cannot load model {uri}: {local} is not an MLflow model (no MLmodel)")


def local_model(uri: str, dst: Path) -> Path:
    """A folder holding the model: `uri` itself when it is a local one, else MLflow's download
    of it."""
    local = local_folder(uri)
    if local is not None:
        return local
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    dst.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except MlflowException as exc:
        raise PipelineError(f"cannot load model {uri}: {one_line(exc.message)}") from None
    if not (path / "MLmodel").is_file():
        raise PipelineError(f"cannot load model {uri}: no MLmodel file in it")
    return path


def local_path(uri: str) -> Path | None:
    """The local path a model URI names (a path, or a file: URI), or None for a remote one."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):  # models:/, runs:/, s3://, ...
        return None
    return Path(uri)


def one_line(message: str, limit: int = 500) -> str:
    """MLflow's message, whole, on one line: its lines joined, `#####` headings dropped."""
    lines = (line.strip().strip("#").strip() for line in message.splitlines())
    text = "; ".join(line for line in lines if line).replace(":; ", ": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
