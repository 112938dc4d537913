"""The Model Registry's primitives the champion rules need: versions and aliases, the decision
log each version carries, a lock so that only one process moves `champion` at a time, and
scoring a registered version on a split (the served raw-text model, loaded as a bundle)."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pipeline import bundle
from pipeline.errors import PipelineError
from pipeline.io import chunks
from pipeline.tracking_uri import first_line

CHAMPION, CHALLENGER = "champion", "challenger"
SCORE_CHUNK = 50_000  # records a champion scores at a time
LOG_TAG = "decisions"  # a JSON list of {at, decision, by, reason}, newest last
LOG_LIMIT = 5000  # characters; the oldest entries go first
LOCK_SUFFIX = ".promotion-lock"  # a registered model that exists while its holder moves aliases
LOCK_STALE_SECONDS = 120.0  # a lock unchanged this long belongs to a process that died
LOCK_POLL_SECONDS = 0.2
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of the model with its tags, oldest first (search fills in no aliases:
    aliases_of() has them)."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


def aliases_of(client: MlflowClient, name: str) -> dict[str, list[str]]:
    """Version -> its aliases, sorted."""
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(client.get_registered_model(name).aliases.items()):
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # made by a concurrent evaluation
            client.create_registered_model(
                name,
                description="Korean sentiment classifier (raw text in, label and probability out).",
            )


def actor(command: str) -> str:
    """Who decides: the command, and the user (MLflow's tracking user name, else the login)."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user:
        with contextlib.suppress(Exception):
            user = getpass.getuser()
    return f"{command} ({user or 'unknown user'})"


def decisions(version: ModelVersion) -> list[dict]:
    try:
        return json.loads(version.tags.get(LOG_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def record(
    client: MlflowClient, name: str, version: str, decision: str, reason: str, by: str
) -> None:
    """Set the version's latest decision (tags decision, decision_reason, decided_by,
    decided_at) and append it to its decision log."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {"at": now, "decision": decision, "by": by, "reason": reason}
    log = [*decisions(client.get_model_version(name, version)), entry]
    while len(json.dumps(log, ensure_ascii=False)) > LOG_LIMIT and len(log) > 1:
        log.pop(0)
    tags = {
        "decision": decision,
        "decision_reason": reason,
        "decided_by": by,
        "decided_at": now,
        LOG_TAG: json.dumps(log, ensure_ascii=False),
    }
    set_tags(client, name, version, tags)


def set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


@contextlib.contextmanager
def lock(client: MlflowClient, name: str) -> Iterator[None]:
    """Hold the model's promotion lock. Creating a registered model is atomic in every store
    (its name is a primary key), so the one process whose creation succeeds holds it. A lock
    seen unchanged for LOCK_STALE_SECONDS (measured here, immune to clock skew) is taken over."""
    lock_name, owner = f"{name}{LOCK_SUFFIX}", uuid.uuid4().hex
    seen, since = None, time.monotonic()
    while True:
        try:
            client.create_registered_model(
                lock_name,
                tags={"owner": owner},
                description=f"Held while a process moves {name}@champion (docs/registry.md)",
            )
            break
        except MlflowException as exc:
            if exc.error_code != ALREADY_EXISTS:
                raise
        held = _lock_created(client, lock_name)
        if held != seen:
            seen, since = held, time.monotonic()
        elif time.monotonic() - since > LOCK_STALE_SECONDS:
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(lock_name)
            continue
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            if client.get_registered_model(lock_name).tags.get("owner") == owner:
                client.delete_registered_model(lock_name)


def _lock_created(client: MlflowClient, lock_name: str) -> int | None:
    try:
        return client.get_registered_model(lock_name).creation_timestamp
    except MlflowException:
        return None


def set_champion_if(
    client: MlflowClient, name: str, version: str, expected: str | None
) -> str | None:
    """Compare and set: move `champion` to `version` if it still points at `expected` (None:
    no champion). Returns None on success, else the version it points at now."""
    with lock(client, name):
        current = by_alias(client, name, CHAMPION)
        now = None if current is None else str(current.version)
        if now != expected:
            return now or "none"
        if expected is not None:
            client.set_model_version_tag(name, version, "previous_champion", expected)
        client.set_registered_model_alias(name, CHAMPION, version)
        return None


def score_version(name: str, version: str, splits: Mapping[str, Iterable[dict]]) -> dict[str, dict]:
    """The registered version's metrics per split (any re-iterable of records), scored as it
    is served (raw text in); a PipelineError with one line when it cannot be downloaded,
    loaded or scored."""
    from pipeline.serving import Bundle

    try:
        with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
            path = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}", dst_path=tmp
                )
            )
            folders = [p.parent for p in path.rglob(bundle.BUNDLE_FILE)]
            if not folders:
                raise PipelineError("its artifacts hold no model bundle")
            model = Bundle(min(folders, key=lambda p: len(p.parts)))
            return {split: _scored(model, records) for split, records in splits.items()}
    except PipelineError:
        raise
    except Exception as exc:  # any failure: a reason not to promote, not a crash
        raise PipelineError(f"{type(exc).__name__}: {first_line(exc)}") from None


def _scored(model, records: Iterable[dict]) -> dict:
    """The metrics of `model` on the records, predicted SCORE_CHUNK at a time."""
    import numpy as np  # the models' libraries load only when a model is scored

    from pipeline.scoring import scores

    labels, probability = [np.zeros(0, np.int64)], [np.zeros(0, np.float64)]
    for chunk in chunks(records, SCORE_CHUNK):
        labels.append(np.array([r["label"] for r in chunk]))
        probability.append(model.predict([r["text"] for r in chunk])["probability"].to_numpy())
    return scores(np.concatenate(labels), np.concatenate(probability))
