"""`python -m pipeline`: one command per DVC stage, plus scoring and benchmarking."""

from __future__ import annotations

import importlib
import os
import sys

import click

from pipeline import quiet
from pipeline.errors import PipelineError

COMMANDS = {
    "prepare": "Load the data source, clean it, write a data report.",
    "tokenize": "Tokenize the prepared documents with every configured tokenizer.",
    "split": "Split into train/validation/test and build the vocabularies.",
    "train": "Train one model variant, tracked as an MLflow run.",
    "evaluate": "Score all variants, write the leaderboard, register the champion.",
    "reap": "Mark KILLED the runs left RUNNING by a process that died (kill -9).",
    "predict": "Score a file of texts with a model (registry URI or bundle folder).",
    "score-spark": "Score a large table of texts on Apache Spark (local or a cluster).",
    "serve": "Serve a model over HTTP (MLflow's protocol, hardened, several workers).",
    "benchmark": "Run the whole pipeline on NSMC and write a results table.",
    "ui": "Start the MLflow UI on the project's store, opened on its runs.",
    "plots-template": "Write the page `dvc plots show` renders into, usable offline.",
    "tracking-server": "Start, stop or check a team's MLflow tracking server on PostgreSQL.",
    "registry": "The champion: promote, roll back, history, status (docs/registry.md).",
    "publish": "Log what DVC holds to the tracking store and register the champion; no training.",
}
# A command whose module is not named after it (pipeline/registry.py is the MLflow service);
# tools/stage_deps.py holds the same mapping.
MODULES = {"registry": "registry_cli"}


class ReportsPipelineErrors:
    """A click command mixin: a PipelineError becomes a one-line `error: ...` and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            sys.exit(1)


class PipelineCommand(ReportsPipelineErrors, click.Command):
    """A stand-alone command (a script's) that reports errors as the pipeline's CLI does."""


class StageGroup(ReportsPipelineErrors, click.Group):
    """Imports a command's module (`pipeline/<name with _ for ->.py`, or MODULES) only when the
    command runs (TensorFlow is slow to import); errors are reported as ReportsPipelineErrors
    says."""

    def invoke(self, ctx):
        if ctx.params.get("verbose"):
            os.environ[quiet.VERBOSE_ENV] = "1"  # the stages this command starts inherit it
        if not quiet.verbose():
            quiet.quiet_env()
            quiet.quiet_python()
        return super().invoke(ctx)

    def list_commands(self, ctx):
        return list(COMMANDS)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = MODULES.get(name, name.replace("-", "_"))
        return importlib.import_module(f"pipeline.{module}").command


@click.group(cls=StageGroup)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's, absl's and MLflow's logs and warnings too (or PIPELINE_VERBOSE=1).",
)
def cli(verbose):
    """Korean sentiment analysis with LSTMs: the stages `dvc repro` runs, and model scoring."""
