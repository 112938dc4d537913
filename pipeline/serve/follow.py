"""Serving follows a registry alias: the parent resolves `models:/<name>@<alias>` to a version,
serves it, and (every `--follow-interval` seconds) asks the registry again. When the alias has
moved, a thread of the parent downloads the new version and test-loads it in a short-lived
process; only a version that loads and scores its input example is published to the workers,
which load it in the background and switch between requests. A version that fails is reported
in one line and not tried again until the alias moves elsewhere and back."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import click

from pipeline.errors import PipelineError
from pipeline.serve.served import Served, alias_target, named_version
from pipeline.serve.workers import load_model, local_model, warm_up

KEPT_COPIES = 2  # the folders of the version served and of the one before (a worker may lag)


def registry_client():
    from mlflow import MlflowClient

    from pipeline.project import repo_root
    from pipeline.tracking import configure

    configure(repo_root())
    return MlflowClient()


def alias_version(client, name: str, alias: str) -> tuple[str, str | None]:
    """(version, run id) the alias points to now; PipelineError naming the URI if none."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        message = exc.message.splitlines()[0]
        raise PipelineError(f"cannot load model models:/{name}@{alias}: {message}") from None
    return str(found.version), found.run_id


def first_model(uri: str, copy: Path) -> Served:
    """The model to serve at start, downloaded into `copy`: for an alias, the version it points
    to now (read once, so every worker serves the same one)."""
    target = alias_target(uri)
    if target is None:
        name, version = named_version(uri)
        model_dir = local_model(uri, copy / "g0")
        return Served(str(model_dir), 0, name, None, version, run_of(model_dir))
    name, alias = target
    version, run_id = alias_version(registry_client(), name, alias)
    model_dir = local_model(f"models:/{name}/{version}", copy / f"g0-v{version}")
    return Served(str(model_dir), 0, name, alias, version, run_id)


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def run_of(model_dir: Path) -> str | None:
    from mlflow.models import Model

    return Model.load(model_dir / "MLmodel").run_id


def probe(model_dir: str, answer) -> None:
    """In a spawned process: load the model and score its input example; sends '' or why not."""
    try:
        model = load_model(Path(model_dir))
        warm_up(model, Path(model_dir))
    except Exception as exc:  # any failure of the model's own code is a reason, not a crash
        answer.send(f"{type(exc).__name__}: {first_line(str(exc))}")
    else:
        answer.send("")


class Follower:
    """A thread of the parent that polls the registry and publishes each new version that
    loads; `publish` hands a Served to the supervisor."""

    def __init__(self, served: Served, copy: Path, interval: float, publish: Callable):
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.served = served
        self.copy = copy
        self.interval = interval
        self.publish = publish
        self.failed: set[str] = set()  # versions that did not load; tried again once left
        self.problem = ""  # the last registry error reported, reported once
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="follow-alias", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        client = registry_client()
        while not self.stopped.wait(self.interval):
            self.poll(client)

    def poll(self, client) -> None:
        name, alias = self.served.name, self.served.alias
        try:
            found = client.get_model_version_by_alias(name, alias)
        except Exception as exc:  # the registry is down or the alias gone: keep serving
            self.report(first_line(getattr(exc, "message", None) or str(exc)) or repr(exc))
            return
        version, run_id = str(found.version), found.run_id
        self.problem = ""
        if version == self.served.version:
            self.failed.clear()
            return
        if version in self.failed:
            return
        generation = self.served.generation + 1
        folder = self.copy / f"g{generation}-v{version}"
        model_dir, reason = self.fetched(f"models:/{name}/{version}", folder)
        if reason:
            self.failed.add(version)
            shutil.rmtree(folder, ignore_errors=True)
            click.echo(
                f"models:/{name}@{alias} moved to version {version}, which failed to load "
                f"({reason}); still serving version {self.served.version}",
                err=True,
            )
            return
        self.served = Served(str(model_dir), generation, name, alias, version, run_id)
        self.publish(self.served)
        click.echo(f"models:/{name}@{alias} is version {version}; switching to it", err=True)
        self.remove_old_copies()

    def report(self, problem: str) -> None:
        if problem != self.problem:
            where = f"models:/{self.served.name}@{self.served.alias}"
            served = self.served.version
            message = f"cannot follow {where} ({problem}); still serving version {served}"
            click.echo(message, err=True)
            self.problem = problem

    def fetched(self, uri: str, folder: Path) -> tuple[Path | None, str]:
        """The model's folder once downloaded into `folder` and loaded there, else why not."""
        try:
            model_dir = local_model(uri, folder)
        except PipelineError as exc:
            return None, str(exc)
        receive, send = self.context.Pipe(duplex=False)
        args = (str(model_dir), send)
        process = self.context.Process(target=probe, args=args, name="serve-probe", daemon=True)
        process.start()
        send.close()
        try:
            reason = receive.recv()
        except EOFError:
            reason = None
        process.join()
        if reason is None:
            reason = f"the test load exited with code {process.exitcode}"
        return model_dir, reason

    def remove_old_copies(self) -> None:
        folders = sorted(
            (p for p in self.copy.iterdir() if p.is_dir() and p.name.startswith("g")),
            key=lambda p: int(p.name[1:].split("-")[0]),
        )
        for folder in folders[:-KEPT_COPIES]:
            shutil.rmtree(folder, ignore_errors=True)
