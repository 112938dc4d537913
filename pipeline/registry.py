"""MLflow side of `evaluate` and of `registry`: which run made each model, metrics into each
run, the ensemble's run; each evaluation's best variant registered as `challenger`, and
`champion` moved by the rules of pipeline/promotion.py (docs/registry.md)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import bundle, model_versions, promotion, tracking
from pipeline.errors import PipelineError
from pipeline.io import JsonlRecords, sha256_file
from pipeline.model_versions import CHALLENGER, CHAMPION, by_alias
from pipeline.promotion import ALREADY, Champion, Decision, Origin, Rule, Scores

ALIAS = CHAMPION
ATTEMPTS = 5  # comparisons against a champion that moved meanwhile, before giving up
COMPARED = "compared_with"  # tag: the champion version a decision compared with


def variant_runs(experiment: str, digests: dict[str, str]) -> dict[str, dict]:
    """Per variant, the run that trained the model now in its folder, and its logged model."""
    runs = {}
    for variant, model_digest in digests.items():
        run = tracking.find_variant_run(experiment, variant, model_digest)
        runs[variant] = {"run_id": run.info.run_id, "model_uri": tracking.logged_model_uri(run)}
    return runs


def log_ensemble_run(experiment: str, name: str, member_runs: dict[str, dict], folder: Path):
    """Log the ensemble like a trained variant (params, tags, pyfunc model)."""
    first = MlflowClient().get_run(next(iter(member_runs.values()))["run_id"])
    tags = tracking.run_tags(name, first.data.tags.get(tracking.DATA_DIGEST_TAG, ""))
    tags |= {
        "member_run_ids": ",".join(run["run_id"] for run in member_runs.values()),
        tracking.MODEL_DIGEST_TAG: bundle.digest(folder),
    }
    with tracking.tracked_run(experiment, tracking.run_name(name), tags) as run:
        mlflow.log_params(
            {"type": name, "members": ",".join(member_runs), "combination": "mean log-odds"}
        )
        model = tracking.log_pyfunc(folder)
    return {"run_id": run.info.run_id, "model_uri": model.model_uri}


def summary_metrics(scores: dict[str, dict]) -> dict[str, float]:
    """A variant's split -> metrics as MLflow keys: val_accuracy, test_roc_auc, ..."""
    return {
        f"{_prefix(split)}_{name}": value
        for split, metrics in scores.items()
        for name, value in metrics.items()
        if name != "confusion_matrix"
    }


def log_evaluation(runs: dict[str, dict], results: dict[str, dict]) -> None:
    """The leaderboard's numbers, unrounded, as each run's summary metrics (step 0)."""
    client = MlflowClient()
    for variant, run in runs.items():
        client.log_batch(
            run["run_id"],
            metrics=[
                mlflow.entities.Metric(key, value, int(time.time() * 1000), 0)
                for key, value in summary_metrics(results[variant]).items()
            ],
        )
        for split, scores in results[variant].items():
            client.log_dict(run["run_id"], scores, f"evaluation/{split}.json")


def _prefix(split: str) -> str:
    return "val" if split == "validation" else split


@dataclass(frozen=True)
class Outcome:
    version: str  # the version decided on
    variant: str
    decision: Decision
    compared: Champion | None  # the champion it was compared with
    champion: str | None  # the version @champion points at afterwards


def register_candidate(
    name: str, variant: str, run: dict, results: dict, origin: Origin, extra: dict[str, str]
):
    """The run's model as a version with alias `challenger`, tagged with what decides and
    explains its promotion. A version of the same model on the same data is reused."""
    client = MlflowClient()
    model_versions.ensure_registered_model(client, name)
    run_tags = client.get_run(run["run_id"]).data.tags
    digests = {
        "data.digest": run_tags.get(tracking.DATA_DIGEST_TAG, ""),
        "model.digest": run_tags.get(tracking.MODEL_DIGEST_TAG, ""),
    }
    same = [
        v
        for v in model_versions.all_versions(client, name)
        if digests["model.digest"] and all(v.tags.get(k) == d for k, d in digests.items())
    ]
    # not mlflow.register_model: it prints "already exists" for the model made above; a
    # tracking server needs the logged model's id beside its models:/<id> source
    uri = run["model_uri"]
    model_id = uri.removeprefix("models:/") if uri.startswith("models:/m-") else None
    version = (
        same[-1]
        if same
        else client.create_model_version(name, uri, run_id=run["run_id"], model_id=model_id)
    )
    tags = {
        "variant": variant,
        **digests,
        "run_id": run["run_id"],
        "git_commit": origin.commit or "",
        "uncommitted": ",".join(origin.uncommitted),
        "dvc.exp_name": origin.dvc_experiment or "",
        "dvc.baseline_rev": origin.dvc_baseline or "",
        **extra,
        **{key: f"{value:.4f}" for key, value in summary_metrics(results).items()},
    }
    model_versions.set_tags(client, name, str(version.version), tags)
    client.update_model_version(
        name,
        str(version.version),
        description=(
            f"Variant '{variant}'; validation accuracy {results['validation']['accuracy']:.4f}, "
            f"test accuracy {results['test']['accuracy']:.4f}. Input: a string column 'text' of "
            "raw Korean text; output: label (0/1; -1 for a text with nothing visible), "
            "sentiment, probability of positive."
        ),
    )
    client.set_registered_model_alias(name, CHALLENGER, str(version.version))
    return client.get_model_version(name, str(version.version))


def evaluate_candidate(
    name: str,
    rule: Rule,
    verdict,
    run: dict,
    results: dict,
    splits: Mapping[str, Iterable[dict]],
    origin: Origin,
    params_digest: str,
) -> Outcome:
    """Register the evaluation's best variant as `challenger`; score the champion on this
    run's splits and move `champion` if pipeline/promotion.py's decide() says so."""
    extra = {
        "params.digest": params_digest,
        "select_by": rule.select_by,
        "gate_failures": "; ".join(verdict.reasons),
    }
    version = register_candidate(name, verdict.champion, run, results, origin, extra)
    data_digest = version.tags.get("data.digest", "")
    mine = Scores(results["validation"][rule.select_by], results["test"][rule.select_by])

    def describe(current) -> Champion:
        if verdict.reasons:
            return Champion(str(current.version), current.tags.get("data.digest", ""), None, "")
        try:
            scored = model_versions.score_version(name, str(current.version), splits)
        except PipelineError as exc:
            return Champion(
                str(current.version), current.tags.get("data.digest", ""), None, str(exc)
            )
        found = Scores(scored["validation"][rule.select_by], scored["test"][rule.select_by])
        return Champion(str(current.version), current.tags.get("data.digest", ""), found)

    def judge(champion: Champion | None) -> Decision:
        return promotion.decide(mine, data_digest, verdict.reasons, champion, origin, rule)

    return settle(name, version, judge, describe, model_versions.actor("evaluate"), rule)


def settle(
    name: str,
    version,
    judge: Callable[[Champion | None], Decision],
    describe: Callable[[object], Champion],
    by: str,
    rule: Rule,
) -> Outcome:
    """Compare `version` with the champion and apply the decision, compare-and-set: if the
    champion moved while it was being scored, compare again with the new one."""
    client = MlflowClient()
    described: dict[str, Champion] = {}
    for _ in range(ATTEMPTS):
        current = by_alias(client, name, CHAMPION)
        expected = None if current is None else str(current.version)
        if expected == str(version.version):
            decision = Decision(False, ALREADY, f"version {expected} is already the champion")
            return _recorded(client, name, version, decision, None, expected, by, rule)
        champion = None
        if current is not None:
            champion = described.get(expected) or described.setdefault(expected, describe(current))
        decision = judge(champion)
        if decision.promote and model_versions.set_champion_if(
            client, name, str(version.version), expected
        ):
            continue  # it moved meanwhile
        now = str(version.version) if decision.promote else expected
        if decision.promote and expected is not None:
            model_versions.record(
                client, name, expected, "replaced", f"by version {version.version}", by
            )
        return _recorded(client, name, version, decision, champion, now, by, rule)
    raise PipelineError(
        f"{name}@champion moved {ATTEMPTS} times while version {version.version} was compared "
        f"with it; compare again: python -m pipeline registry promote --version {version.version}"
    )


def _recorded(client, name, version, decision, champion, now, by, rule) -> Outcome:
    if champion is not None:
        number = str(version.version)
        scored = {f"{COMPARED}.{s}_{rule.select_by}": s for s in ("val", "test")}
        for key in scored if champion.scores is None else ():  # no stale scores of another
            with contextlib.suppress(MlflowException):
                client.delete_model_version_tag(name, number, key)
        tags = {COMPARED: str(champion.version)}
        if champion.scores is not None:
            values = {"val": champion.scores.validation, "test": champion.scores.test}
            tags |= {key: repr(values[split]) for key, split in scored.items()}
        model_versions.set_tags(client, name, number, tags)
    model_versions.record(client, name, str(version.version), decision.outcome, decision.reason, by)
    variant = version.tags.get("variant", "")
    return Outcome(str(version.version), variant, decision, champion, now)


def promote(
    name: str, target: str | None, rule: Rule, data_dir: Path, force_reason: str | None
) -> Outcome:
    """`registry promote`: make `target` (default: the challenger) champion if it beats the
    champion by the margin (the comparison evaluate recorded, or the champion's own scores on
    the same data, or the champion scored on `data_dir` when it holds the target's data);
    a worse model only with a reason."""
    client = MlflowClient()
    version = _resolve(client, name, target)
    mine = _own_scores(client, version, rule)
    gate = [r for r in version.tags.get("gate_failures", "").split("; ") if r]

    def describe(current) -> Champion:
        return _champion_against(client, name, version, current, rule, data_dir)

    def judge(champion: Champion | None) -> Decision:
        return promotion.decide_explicitly(mine, gate, champion, rule, force_reason)

    return settle(name, version, judge, describe, model_versions.actor("registry promote"), rule)


def rollback(name: str) -> Outcome:
    """Return `champion` to the version it replaced (the champion's `previous_champion`)."""
    client = MlflowClient()
    current = by_alias(client, name, CHAMPION)
    if current is None:
        raise PipelineError(f"{name} has no champion to roll back")
    previous = current.tags.get("previous_champion")
    if not previous:
        raise PipelineError(f"{name}@champion (version {current.version!s}) replaced no champion")
    by = model_versions.actor("registry rollback")
    with model_versions.lock(client, name):
        if str(by_alias(client, name, CHAMPION).version) != str(current.version):
            raise PipelineError(f"{name}@champion moved meanwhile; run the command again")
        client.set_registered_model_alias(name, CHAMPION, previous)
    model_versions.record(
        client,
        name,
        str(current.version),
        "rolled back",
        f"champion back to version {previous}",
        by,
    )
    reason = f"rollback from version {current.version!s}"
    model_versions.record(client, name, previous, "restored", reason, by)
    restored = client.get_model_version(name, previous)
    decision = Decision(True, "restored", reason)
    return Outcome(previous, restored.tags.get("variant", ""), decision, None, previous)


def _resolve(client: MlflowClient, name: str, target: str | None):
    if target is None:
        version = by_alias(client, name, CHALLENGER)
        if version is None:
            raise PipelineError(f"{name} has no challenger; name a version with --version")
        return version
    try:
        return client.get_model_version(name, str(int(target)))
    except (ValueError, MlflowException):
        raise PipelineError(f"{name} has no version {target!r}") from None


def _own_scores(client: MlflowClient, version, rule: Rule) -> Scores:
    """The version's validation and test `select_by`, unrounded from its run when it has them."""
    keys = (f"val_{rule.select_by}", f"test_{rule.select_by}")
    values = {}
    with contextlib.suppress(MlflowException):
        values = client.get_run(version.run_id).data.metrics
    found = [values.get(key, version.tags.get(key)) for key in keys]
    if None in found:
        raise PipelineError(f"version {version.version} carries no {' or '.join(keys)}")
    return Scores(float(found[0]), float(found[1]))


def _champion_against(client, name, version, current, rule: Rule, data_dir: Path) -> Champion:
    """The champion's scores on the target's data: recorded by evaluate, its own on the same
    data, or scored now on `data_dir` if that holds the target's data."""
    digest, theirs = version.tags.get("data.digest", ""), current.tags.get("data.digest", "")
    recorded = [version.tags.get(f"{COMPARED}.{s}_{rule.select_by}") for s in ("val", "test")]
    if version.tags.get(COMPARED) == str(current.version) and None not in recorded:
        return Champion(str(current.version), theirs, Scores(*map(float, recorded)))
    if theirs == digest:
        with_scores = _own_scores(client, current, rule)
        return Champion(str(current.version), theirs, with_scores)
    train = data_dir / "train.jsonl"
    if not train.is_file() or sha256_file(train)[:16] != digest:
        return Champion(
            str(current.version),
            theirs,
            None,
            f"it was trained on other data ({theirs}) and {data_dir} does not hold version "
            f"{version.version}'s ({digest}): check out its commit and `dvc pull`, or pass "
            "--data-dir",
        )
    splits = {s: JsonlRecords(data_dir / f"{s}.jsonl") for s in ("validation", "test")}
    try:
        scored = model_versions.score_version(name, str(current.version), splits)
    except PipelineError as exc:
        return Champion(str(current.version), theirs, None, str(exc))
    found = Scores(scored["validation"][rule.select_by], scored["test"][rule.select_by])
    return Champion(str(current.version), theirs, found)
