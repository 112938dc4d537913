"""`serve` follows a registry alias (pipeline/serve/follow.py): a real SQLite registry with two
tiny models that answer the same text with opposite labels, a real server polling it every half
second, and a client that never stops sending requests while the alias moves."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests
from click.testing import CliRunner

from pipeline import tracking
from pipeline.cli import cli
from pipeline.serve.served import Served, alias_target, named_version
from pipeline.train import TrainSettings, train_variant, write_bundle
from tests.helpers import TFIDF, tiny_records

NAME = "tiny"
TEXT = {"inputs": ["영화 좋다"]}


def test_alias_and_version_uris_are_recognised():
    assert alias_target("models:/korean-sentiment@champion") == ("korean-sentiment", "champion")
    assert alias_target("models:/korean-sentiment/3") is None
    assert alias_target("runs:/abc/model") is None
    assert named_version("models:/korean-sentiment/3") == ("korean-sentiment", "3")
    assert named_version("models:/korean-sentiment@champion") == (None, None)


def test_what_is_served_is_written_and_read_back(tmp_path):
    served = Served(str(tmp_path), 2, NAME, "champion", "3", "abc")
    served.write(tmp_path / "served.json")
    assert Served.read(tmp_path / "served.json") == served
    assert served.public() == {"name": NAME, "alias": "champion", "version": "3", "run_id": "abc"}


def tiny_bundle(folder: Path, flipped: bool) -> Path:
    """A char TF-IDF model: '좋다' is positive, or negative when `flipped`."""
    records = [
        {**record, "label": 1 - record["label"] if flipped else record["label"]}
        for record in tiny_records()
    ]
    section = {"experiment": "e", "seed": 3, "variants": {"tfidf": TFIDF}}
    splits = {"train": records[:16], "validation": records[16:]}
    write_bundle(train_variant(TrainSettings.from_params(section, "tfidf"), splits, None), folder)
    return folder


def registered(bundle: Path, experiment: str, artifacts: Path) -> str:
    """The registry version of a new run that logs `bundle`."""
    mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        info = tracking.log_pyfunc(bundle)
    return str(mlflow.register_model(info.model_uri, NAME).version)


@pytest.fixture
def registry(tracking_uri, tmp_path) -> dict:
    """Versions 1 (positive), 2 (the same text negative) and 3 (artifacts broken after logging);
    `champion` on version 1."""
    versions = {}
    for label, flipped in (("good", False), ("flipped", True), ("broken", False)):
        bundle = tiny_bundle(tmp_path / label, flipped)
        versions[label] = registered(bundle, label, tmp_path / f"artifacts-{label}")
    for stored in (tmp_path / "artifacts-broken").rglob("bundle.json"):
        stored.write_text("{not json", encoding="utf-8")
    set_champion(versions["good"])
    return versions


def set_champion(version: str) -> None:
    mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", version)


class Client:
    """Sends TEXT without pause from a thread; records (version header, label, seconds) or the
    failure of each request."""

    def __init__(self, base: str):
        self.base = base
        self.answers: list[tuple[str | None, int | None, float]] = []
        self.failures: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        with requests.Session() as session:
            while not self.stopped.is_set():
                began = time.perf_counter()
                try:
                    response = session.post(self.base + "/invocations", json=TEXT, timeout=60)
                except requests.RequestException as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                took = time.perf_counter() - began
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                    continue
                label = response.json()["predictions"][0]["label"]
                self.answers.append((response.headers.get("x-model-version"), label, took))

    def wait_for(self, version: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1][0] == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"no answer from version {version}; the last: {self.answers[-1:]}")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


def runs_of(versions: list[str | None]) -> list[str | None]:
    """The versions in the order answers came from them, each run of answers counted once."""
    return [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]


def p99(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100)[98] if len(seconds) > 1 else seconds[0]


def follow_command(servers, workers: str) -> list[str]:
    command = servers.serve_command("--workers", workers, "--follow-interval", "0.5")
    command[command.index(servers.champion)] = f"models:/{NAME}@champion"
    return command


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serving_follows_a_promotion_and_a_rollback_without_a_failed_request(
    registry, servers, tmp_path, workers
):
    good, flipped = registry["good"], registry["flipped"]
    with servers.start(follow_command(servers, workers), tmp_path) as (process, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        servers.wait_ready(base, 300)
        assert requests.get(base + "/version", timeout=10).json() == {
            "name": NAME,
            "alias": "champion",
            "version": good,
            "run_id": mlflow.MlflowClient().get_model_version(NAME, good).run_id,
        }
        with Client(base) as client:
            time.sleep(1)
            set_champion(flipped)  # a promotion
            client.wait_for(flipped)
            time.sleep(1)
            set_champion(good)  # a rollback
            client.wait_for(good)
            time.sleep(1)
        log.wait_for(rf"every worker serves version {good}", 5)
        assert process.poll() is None
    assert client.failures == []
    versions = [version for version, _, _ in client.answers]
    assert runs_of(versions) == [good, flipped, good]
    expected = {good: 1, flipped: 0}  # every answer comes from the version its header names
    assert all(label == expected[version] for version, label, _ in client.answers)
    seconds = [took for _, _, took in client.answers]
    print(
        f"{len(seconds)} requests, p50 {statistics.median(seconds) * 1000:.1f} ms, "
        f"p99 {p99(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms"
    )


@pytest.mark.slow
def test_a_version_that_fails_to_load_or_a_lost_alias_leaves_the_old_one_serving(
    registry, servers, tmp_path
):
    good, broken = registry["good"], registry["broken"]
    with servers.start(follow_command(servers, "1"), tmp_path) as (process, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        servers.wait_ready(base, 300)
        with Client(base) as client:
            set_champion(broken)
            line = log.wait_for(
                rf"^models:/{NAME}@champion moved to version {broken}, which "
                rf"failed to load \(.+\); still serving version {good}$",
                180,
            )
            time.sleep(2)  # four more looks at the registry: no second line
            mlflow.MlflowClient().delete_registered_model_alias(NAME, "champion")
            log.wait_for(
                rf"^cannot follow models:/{NAME}@champion \(Registered model alias champion not "
                rf"found\.\); still serving version {good}$",
                30,
            )
            time.sleep(2)
        assert process.poll() is None
        response = requests.post(base + "/invocations", json=TEXT, timeout=60)
        assert response.headers["x-model-version"] == good
        assert requests.get(base + "/version", timeout=10).json()["version"] == good
    assert client.failures == []
    assert {version for version, _, _ in client.answers} == {good}
    assert log.text().count("failed to load") == 1
    assert log.text().count("cannot follow") == 1
    assert "Traceback" not in log.text()
    assert "{not json" not in line.group(0)


def test_an_unknown_alias_is_a_one_line_error(registry, servers, tmp_path):
    command = follow_command(servers, "1")
    command[command.index(f"models:/{NAME}@champion")] = f"models:/{NAME}@nope"
    with servers.start(command, tmp_path) as (process, log):
        assert process.wait(timeout=120) == 1
    assert log.lines[-1] == (
        f"error: cannot load model models:/{NAME}@nope: Registered model alias nope not found."
    )
    assert "Traceback" not in log.text()


def test_a_negative_interval_is_refused():
    result = CliRunner().invoke(
        cli, ["serve", "-m", "models:/m@champion", "--follow-interval", "-1"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--follow-interval'" in result.output
