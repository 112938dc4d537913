"""The parent process: starts the workers (spawned, not forked: TensorFlow is not fork-safe),
restarts one that dies after it was ready, stops everything if one dies before, and stops all
workers on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import replace
from pathlib import Path

import click

from pipeline.errors import PipelineError
from pipeline.serve.served import Served
from pipeline.serve.workers import SHUTDOWN_SECONDS, Shared, WorkerSettings, run_worker


class Stopped(Exception):
    """SIGTERM or SIGINT while the parent is not yet supervising workers."""


class Supervisor:
    """Starts the workers, restarts one that dies after it was ready, stops all on a signal."""

    def __init__(self, sock: socket.socket, settings: WorkerSettings, workers: int):
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.sock = sock
        self.settings = settings
        generation = settings.served.generation
        self.shared = Shared(
            ready=self.context.RawArray("b", workers),
            loaded=self.context.RawArray("i", [generation] * workers),
            published=self.context.RawValue("i", generation),
            active=self.context.RawValue("i", generation),
        )
        self.ready = self.shared.ready
        self.pending: Served | None = None  # published, not yet held by every worker
        self.processes: list = [None] * workers
        self.seen_ready = [False] * workers
        self.stop_signal: int | None = None

    def start(self, index: int) -> None:
        self.ready[index] = 0
        self.shared.loaded[index] = self.settings.served.generation
        self.seen_ready[index] = False
        process = self.context.Process(
            target=run_worker,
            args=(index, self.sock, self.settings, self.shared),
            name=f"serve-worker-{index}",
        )
        process.start()
        self.processes[index] = process

    def publish(self, served: Served) -> None:
        """Have every worker load `served` (from a thread: `switch` makes it active)."""
        served.write(Path(self.settings.published))
        self.pending = served
        self.shared.published.value = served.generation

    def switch(self) -> None:
        """Make the pending version active once every worker holds it (and a worker started
        later starts with it); drop it if a worker could not load it."""
        served = self.pending
        if served is None:
            return
        loaded = list(self.shared.loaded)
        if -served.generation in loaded:
            self.pending = None
            click.echo(f"a worker could not load version {served.version} (above)", err=True)
        elif all(generation == served.generation for generation in loaded):
            self.settings = replace(self.settings, served=served)
            self.shared.active.value = served.generation
            self.pending = None
            click.echo(f"every worker serves version {served.version}", err=True)

    def on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def run(self, url: str) -> None:
        from multiprocessing.connection import wait

        for index in range(len(self.processes)):
            self.start(index)
        announced = False
        try:
            while self.stop_signal is None:
                wait([p.sentinel for p in self.processes], timeout=0.5)
                for index, process in enumerate(self.processes):
                    if self.ready[index]:
                        self.seen_ready[index] = True
                    if process.exitcode is None or self.stop_signal is not None:
                        continue
                    self.ready[index] = 0
                    if not self.seen_ready[index]:
                        raise PipelineError(
                            f"worker {index} exited with code {process.exitcode} before it had "
                            "loaded the model (its log is above)"
                        )
                    click.echo(
                        f"worker {index} exited with code {process.exitcode}; restarting", err=True
                    )
                    self.start(index)
                self.switch()
                if not announced and all(self.seen_ready):
                    count = len(self.processes)
                    click.echo(f"serving at {url}: {count} of {count} workers ready", err=True)
                    announced = True
        finally:
            self.stop()

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        alive = [p for p in self.processes if p is not None and p.exitcode is None]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()


def announce_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def raise_stopped(signum, frame):
    raise Stopped()
