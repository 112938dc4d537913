"""Every file, command and option the README and docs/ cite exists."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import click
import pytest
import yaml

from pipeline.cli import COMMANDS, cli
from tests.helpers import REPO, clean_env, sh

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Paths the docs name that the pipeline, setup or a server writes: not in a clean clone.
GENERATED = (
    "reports/",
    "models/",
    "ensemble",
    "mlflow.db",
    "mlartifacts",
    "data/prepared",
    "data/tokenized",
    "data/split",
    "data/raw",
    "benchmarks/runs/",
    "dvc_plots",
    ".mlflow-server",
    ".dvc/plots/offline.html",
    ".venv",
    "outputs/",
    ".dvc/cache",
    ".dvc/config.local",
)
PATH = re.compile(
    r"(?<![\w/.-])((?:pipeline|tests|benchmarks|docs|tools|data|\.dvc|reports|models)/[\w./<>*@-]*"
    r"|(?:params|dvc)\.yaml|MLproject|Makefile|conda\.yaml|python_env\.yaml|pyproject\.toml"
    r"|README\.md)"
)
LINK = re.compile(r"\]\(([^)#:]+)\)")


def _text(doc) -> str:
    return doc.read_text(encoding="utf-8")


def cited_paths(doc) -> set[str]:
    found = {m.group(1).rstrip(".,:;") for m in PATH.finditer(_text(doc))}
    found |= {
        str((doc.parent / link).resolve().relative_to(REPO)) for link in LINK.findall(_text(doc))
    }
    return {
        path
        for path in found
        if not any(mark in path for mark in "<>*") and not path.startswith(GENERATED)
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_cited_path_exists(doc):
    missing = sorted(path for path in cited_paths(doc) if not (REPO / path).exists())
    assert not missing, f"{doc.name} cites missing paths: {missing}"


CONFLICT_MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)


def test_no_tracked_file_holds_a_merge_conflict_marker():
    tracked = sh(["git", "ls-files", "-z"], cwd=REPO).stdout.split("\0")
    texts = [REPO / name for name in tracked if name.endswith((".md", ".py", ".yaml", ".toml"))]
    marked = [p.name for p in texts if p.is_file() and CONFLICT_MARKER.search(p.read_text())]
    assert not marked, f"merge conflict markers in {marked}"


def command_lines(doc) -> list[str]:
    """Shell lines of the doc's code (continuations joined), and inline code spans (a span
    broken over two lines of the doc is one command)."""
    text = _text(doc).replace("\\\n", " ")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    lines = [line.split(" #")[0] for block in blocks for line in block.splitlines()]
    spans = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return lines + [" ".join(span.split()) for span in spans]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_cited_command_and_option_exists(doc):
    targets = set(re.findall(r"^([\w-]+):", _text(REPO / "Makefile"), flags=re.M))
    problems = []
    for line in command_lines(doc):
        for target in re.findall(r"\bmake ([a-z][\w-]*)", line):
            if target not in targets:
                problems.append(f"make {target}")
        for script in re.findall(r"python3? ((?:benchmarks|tools)/\w+\.py)", line):
            if not (REPO / script).is_file():
                problems.append(script)
        found = re.search(r"python -m pipeline ([a-z][\w-]*)(.*)", line)
        if not found:
            continue
        name, rest = found.groups()
        if name not in COMMANDS:
            problems.append(f"python -m pipeline {name}")
            continue
        command = cli.get_command(click.Context(cli), name)
        subcommands = getattr(command, "commands", {})
        if subcommands:
            first = rest.split()[0] if rest.split() else ""
            command = subcommands.get(first, command)
        options = {o for param in command.params for o in param.opts}
        problems += [
            f"{name} {flag}"
            for flag in re.findall(r"(?<!\w)(--[a-z][\w-]*)", rest)
            if flag not in options
        ]
    assert not problems, f"{doc.name} cites what does not exist: {problems}"


def documented(prefix: str) -> list[str]:
    """Every documented command line that starts with `prefix`, in the docs' order, once."""
    found = []
    for doc in DOCS:
        for line in command_lines(doc):
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(prefix) and part not in found:
                    found.append(part)
    return found


def set_params(line: str) -> list[str]:
    return re.findall(r"-S\s+'?([\w.]+)=", line)


def test_every_documented_param_override_names_an_existing_param():
    """`dvc exp run -S key=value` only sets keys that exist (Hydra's struct mode)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    missing = []
    for line in documented("dvc exp run"):
        for key in set_params(line):
            node = params
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(key)
                    break
                node = node[part]
    assert documented("dvc exp run -S") and not missing, missing


def test_every_documented_make_command_is_a_target_make_accepts(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv/.installed").touch()  # installed: a dry run prints the recipes only
    failed = []
    for line in documented("make "):
        result = subprocess.run(
            ["make", "-n", *shlex.split(line)[1:]], cwd=tmp_path, capture_output=True, text=True
        )
        if result.returncode != 0:
            failed.append(f"{line}: {result.stderr.strip()}")
    assert not failed, failed


def test_every_documented_mlflow_run_names_an_entry_point_and_its_parameters():
    entries = yaml.safe_load((REPO / "MLproject").read_text(encoding="utf-8"))["entry_points"]
    problems = []
    for line in documented("mlflow run ."):
        args = shlex.split(line)
        entry = args[args.index("-e") + 1] if "-e" in args else "main"
        declared = entries.get(entry, {}).get("parameters", {}) if entry in entries else None
        if declared is None:
            problems.append(f"{line}: no entry point {entry}")
            continue
        given = [args[i + 1].split("=")[0] for i, a in enumerate(args) if a == "-P"]
        problems += [f"{line}: no parameter {p}" for p in given if p not in declared]
    assert documented("mlflow run .") and not problems, problems


# Documented dvc commands that need what a sample project has not: a remote with the outputs, a
# placeholder, or hours of training (their -S keys are checked above).
NOT_RUN = ("dvc push", "dvc pull", "dvc exp run --queue", "dvc exp run --run-all")
RUN_ONCE = "dvc exp run -S"  # the first documented experiment is run for real
NOISE = re.compile(r"^[IWE]\d{4} |absl::InitializeLog|Warning:|Add type hints", re.M)


def _untracked(root) -> list[str]:
    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], root).stdout
    return [line for line in status.splitlines() if line.startswith("??")]


def _bilstm_units(data: dict) -> int:
    return data["params"]["params.yaml"]["data"]["train"]["variants"]["bilstm"]["units"]


@pytest.mark.e2e
def test_every_documented_dvc_command_runs_on_the_sample_project(sample_repo, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(sample_repo, root, symlinks=True)
    assert not _untracked(root), "dvc repro left files git does not ignore"
    sh(["git", "add", "-A"], root)
    sh(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--allow-empty",
            "-qm",
            "repro",
        ],
        root,
    )
    experiment = None
    for line in documented("dvc "):
        if line.startswith(NOT_RUN) or "<" in line:
            continue
        if line.startswith(RUN_ONCE):
            if experiment:
                continue
            experiment = line
        result = sh(shlex.split(line), root, env=clean_env(COLUMNS="120"))
        if line == experiment:
            output = result.stdout + result.stderr
            assert not NOISE.search(output), NOISE.search(output).group(0)
    assert experiment == "dvc exp run -S train.variants.bilstm.units=64"
    assert not _untracked(root), "the documented commands left files git does not ignore"

    shown = json.loads(sh(["dvc", "exp", "show", "--json"], root).stdout)
    runs = [exp["revs"][0]["data"] for rev in shown for exp in rev.get("experiments") or []]
    # the bare `dvc exp run` and `--temp` of the docs ran from that workspace too
    experiments = [r for r in runs if _bilstm_units(r) == 64]
    assert experiments and len(experiments) == len(runs)
    for data in experiments:
        variants = data["metrics"]["reports/evaluate/variants.json"]["data"]["val_accuracy"]
        assert set(variants) >= {"bilstm", "ensemble"}

    table = sh(
        ["dvc", "exp", "show", "--no-pager", "--only-changed", "--drop", EXP_SHOW_DROP],
        root,
        env=clean_env(COLUMNS="120"),
    ).stdout
    assert max(len(line) for line in table.splitlines()) <= 120, table
    assert "units" in table and "bilstm" in table, table


# The `--drop` of docs/tracking.md's `dvc exp show`: the dependencies' and the date's columns.
EXP_SHOW_DROP = "Created|pipeline/|data/|reports/|models"


def test_the_documented_exp_show_drops_the_dependency_columns():
    assert f"dvc exp show --only-changed --drop '{EXP_SHOW_DROP}'" in documented("dvc exp show")


def expanded(name: str) -> set[str]:
    """`evaluation/{validation,test}.json` -> both names."""
    found = re.search(r"\{([^}]*)\}", name)
    if not found:
        return {name}
    return set().union(
        *(
            expanded(name[: found.start()] + part + name[found.end() :])
            for part in found[1].split(",")
        )
    )


def table_row(doc: str, first_cell: str) -> str:
    return next(
        line for line in _text(REPO / doc).splitlines() if line.startswith(f"| {first_cell} |")
    )


def documented_names(row: str) -> set[str]:
    return set().union(*(expanded(name) for name in re.findall(r"`([^`]+)`", row)))


def version_tags_documented() -> set[str]:
    """The first column of docs/tracking.md's table of version tags: add a row, and a tag."""
    text = _text(REPO / "docs/tracking.md")
    table = text.split("| version tag | value |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return set().union(*(documented_names(row) for row in rows))


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.e2e
def test_tracking_md_lists_what_runs_and_versions_carry(sample_repo):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{sample_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("korean-sentiment")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")
    logged = set().union(*(_artifacts(client, run.info.run_id) for run in runs))
    documented = documented_names(table_row("docs/tracking.md", "artifacts"))
    assert logged == documented
    for run in runs:
        models = client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        assert [m.name for m in models] == ["model"]
    assert "`model`" in table_row("docs/tracking.md", "logged model")
    versions = client.search_model_versions("name = 'korean-sentiment'")
    assert versions
    documented = version_tags_documented()
    for version in versions:  # a first champion, say, was compared with none: fewer tags
        assert set(version.tags) <= documented, (version.version, set(version.tags) - documented)
        assert {"variant", "data.digest", "decision", "decisions"} <= set(version.tags)
