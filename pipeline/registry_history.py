"""What the registry holds, in words: one line per version with its decisions (`registry
history`), and whether `@champion` is this workspace's evaluated model, and if not why
(`registry status`, which the `registry-check` stage runs after every `dvc repro`)."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pipeline import model_versions
from pipeline.model_versions import CHAMPION, by_alias
from pipeline.promotion import PROMOTE_COMMAND


def history_lines(name: str) -> list[str]:
    """Newest first: version, aliases, variant, data digest, metrics, origin, decisions."""
    client = MlflowClient()
    try:
        versions = model_versions.all_versions(client, name)
        aliases = model_versions.aliases_of(client, name)
    except MlflowException:
        versions = []
    if not versions:
        return [f"{name} has no registered versions"]
    return [version_line(v, aliases.get(str(v.version), [])) for v in reversed(versions)]


def version_line(version, aliases: list[str]) -> str:
    tags = version.tags
    select_by = tags.get("select_by", "accuracy")
    shown = ",".join(aliases) or "-"
    metrics = " ".join(
        f"{key} {tags[key]}"
        for key in dict.fromkeys(
            (f"val_{select_by}", f"test_{select_by}", "val_accuracy", "test_accuracy")
        )
        if key in tags
    )
    origin = f"commit {tags.get('git_commit', '')[:7] or '-'}"
    if tags.get("dvc.exp_name"):
        origin += f" exp {tags['dvc.exp_name']}"
    if tags.get("uncommitted"):
        origin += f" uncommitted {tags['uncommitted']}"
    decided = "; ".join(
        f"{d.get('at', '')} {d.get('decision', '')} by {d.get('by', '')}: {d.get('reason', '')}"
        for d in model_versions.decisions(version)
    )
    return (
        f"v{version.version!s} [{shown}] {tags.get('variant', '-')} "
        f"data {tags.get('data.digest', '-')} {metrics} {origin} | {decided or 'no decision'}"
    )


def status(name: str, evaluated: dict | None) -> tuple[bool, list[str]]:
    """(whether @champion is this workspace's evaluated model, lines saying so or why not).
    `evaluated` is reports/evaluate/champion.json (None when there is none)."""
    client = MlflowClient()
    champion = by_alias(client, name, CHAMPION)
    if evaluated is None:
        return False, ["this workspace has no evaluation yet (dvc repro makes one)"]
    mine = _version_of(client, name, evaluated)
    theirs = "no champion" if champion is None else f"version {_described(champion)}"
    if champion is not None and mine is not None and str(champion.version) == str(mine.version):
        return True, [f"{name}@champion is this workspace's model: version {_described(mine)}"]
    lines = [f"{name}@champion ({theirs}) is not this workspace's evaluated model"]
    if mine is None:
        lines.append(
            f"this workspace's model ({evaluated.get('variant')}, model digest "
            f"{evaluated.get('model_digest')}) is not registered in this store; "
            "`dvc repro --force evaluate` registers it and compares it with the champion"
        )
        return False, lines
    lines.append(f"this workspace's model is version {_described(mine)}: {_last(mine)}")
    if champion is not None:
        if champion.tags.get("data.digest") != evaluated.get("data_digest"):
            lines.append(
                f"the champion was trained on other data (digest "
                f"{champion.tags.get('data.digest')}) than this workspace's "
                f"({evaluated.get('data_digest')})"
            )
        lines.append(f"the champion's last decision: {_last(champion)}")
    lines.append(f"to compare them again: {PROMOTE_COMMAND} --version {mine.version!s}")
    return False, lines


def _version_of(client: MlflowClient, name: str, evaluated: dict):
    try:
        versions = model_versions.all_versions(client, name)
    except MlflowException:
        return None
    return next(
        (
            v
            for v in reversed(versions)
            if v.tags.get("model.digest") == evaluated.get("model_digest")
            and v.tags.get("data.digest") == evaluated.get("data_digest")
        ),
        None,
    )


def _described(version) -> str:
    tags = version.tags
    return f"{version.version!s} ({tags.get('variant', '-')}, data {tags.get('data.digest', '-')})"


def _last(version) -> str:
    log = model_versions.decisions(version)
    if not log:
        return "no decision recorded"
    d = log[-1]
    return f"{d.get('decision')} by {d.get('by')} at {d.get('at')}: {d.get('reason')}"
