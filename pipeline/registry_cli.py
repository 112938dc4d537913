"""`python -m pipeline registry promote|rollback|history|status`: the champion's lifecycle by
hand, under the rules `evaluate` applies (pipeline/promotion.py, docs/registry.md)."""

from __future__ import annotations

from pathlib import Path

import click
from mlflow.exceptions import MlflowException

from pipeline import promotion, registry_history, tracking
from pipeline.errors import PipelineError
from pipeline.io import read_json
from pipeline.options import params_option
from pipeline.project import repo_root
from pipeline.schema import load_section
from pipeline.tracking_uri import store_uri


def _name_and_rule(params_path: Path) -> tuple[str, promotion.Rule]:
    section = load_section(params_path, "evaluate")
    root = repo_root()
    tracking.configure(root)
    tracking.reap_project_store(root)  # no run of a dead process stays RUNNING
    return section["registered_model"], promotion.rule_from(section)


def _missing_local_store(uri: str) -> Path | None:
    """The file of a SQLite store that does not exist yet (opening it would create it)."""
    path = Path(uri.removeprefix("sqlite:///"))
    return path if uri.startswith("sqlite:///") and not path.is_file() else None


@click.group("registry")
def command():
    """The registered model's champion: promote, roll back, history, status."""


@command.command("promote")
@params_option
@click.option("--version", "target", help="The version to promote (default: @challenger).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default="data/split",
    show_default=True,
    help="Where the version's split lies, to score a champion trained on other data.",
)
@click.option("--force", is_flag=True, help="Promote even a model that is not better.")
@click.option("--reason", help="Why, with --force (recorded on the version).")
def promote(params_path, target, data_dir, force, reason):
    """Make a version champion if it beats the champion by evaluate.promote_margin."""
    if force and not (reason or "").strip():
        raise PipelineError('--force needs --reason "why" (it is recorded on the version)')
    from pipeline import registry

    name, rule = _name_and_rule(params_path)
    outcome = registry.promote(name, target, rule, data_dir, reason.strip() if force else None)
    decision = outcome.decision
    line = f"version {outcome.version} ({outcome.variant}): {decision.outcome}: {decision.reason}"
    if decision.outcome == promotion.REFUSED:
        raise PipelineError(f'{line}; --force --reason "..." promotes it anyway')
    click.echo(f"{line}\n{name}@champion is version {outcome.champion}")


@command.command("rollback")
@params_option
def rollback(params_path):
    """Return @champion to the version it replaced."""
    from pipeline import registry

    name, _ = _name_and_rule(params_path)
    outcome = registry.rollback(name)
    click.echo(f"{name}@champion is version {outcome.version} again ({outcome.variant})")


@command.command("history")
@params_option
def history(params_path):
    """One line per version: aliases, variant, data, metrics, origin, every decision."""
    name, _ = _name_and_rule(params_path)
    for line in registry_history.history_lines(name):
        click.echo(line)


@command.command("status")
@params_option
@click.option(
    "--evaluated",
    type=click.Path(path_type=Path),
    default="reports/evaluate/champion.json",
    show_default=True,
    help="evaluate's champion.json: the model this workspace's pipeline chose.",
)
@click.option("--warn-only", is_flag=True, help="Exit 0 even when the registry cannot be read.")
def status(params_path, evaluated, warn_only):
    """Whether @champion is this workspace's evaluated model, and if not, why."""
    missing = _missing_local_store(store_uri(repo_root()))
    if missing:  # a clone that pulled its outputs: nothing registered here, and nothing made
        click.echo(
            f"registry: no tracking store at {missing.name} yet; `python -m pipeline publish` "
            "logs and registers what DVC holds"
        )
        return
    try:
        name, _ = _name_and_rule(params_path)
        record = read_json(evaluated) if evaluated.is_file() else None
        same, lines = registry_history.status(name, record)
    except (PipelineError, MlflowException) as exc:
        if not warn_only:
            raise
        same, lines = False, [f"the registry could not be checked: {exc}"]
    if same:
        click.echo(f"registry: {lines[0]}")
        return
    click.secho(f"registry warning: {lines[0]}", fg="yellow", err=True)
    for line in lines[1:]:
        click.secho(f"  {line}", fg="yellow", err=True)
