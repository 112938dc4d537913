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

from pipeline.errors import PipelineError
from pipeline.serve.checks import Limits
from pipeline.serve.guard import build_app, safe_error_type, text_checker
from pipeline.serve.protocol import ConnectionLimits, protocol_class

BACKLOG = 2048
SHUTDOWN_SECONDS = 30  # a worker still running this long after SIGTERM is killed

log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class WorkerSettings:
    model_dir: str
    limits: Limits
    parent_pid: int
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


def run_worker(index: int, sock: socket.socket, settings: WorkerSettings, ready) -> None:
    """One worker process: load, warm up, then serve the inherited socket until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    exit_with_parent(settings.parent_pid)
    import uvicorn

    model_dir = Path(settings.model_dir)
    safe_error_type()
    check = text_checker()  # imported from this package before load_model drops its modules
    model = load_model(model_dir)
    warm_up(model, model_dir)
    csv.field_size_limit(settings.limits.max_body_bytes)
    app = build_app(model, settings.limits, lambda: (sum(ready), len(ready)), check)

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
