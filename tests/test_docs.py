"""Every file, command and option the README and docs/ cite exists."""

from __future__ import annotations

import re

import click
import pytest

from pipeline.cli import COMMANDS, cli
from tests.helpers import REPO

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


def command_lines(doc) -> list[str]:
    """Shell lines of the doc's code (continuations joined), and inline code spans."""
    text = _text(doc).replace("\\\n", " ")
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    lines = [line.split(" #")[0] for block in blocks for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", text)


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
