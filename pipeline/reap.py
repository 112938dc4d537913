"""`python -m pipeline reap`: mark KILLED the runs left RUNNING by a process that died.

DVC restores a stage from its run cache without running its command, so after a training process
was killed with `kill -9` no stage of the next `dvc repro` may start that would notice its run;
the always-changed stage `reap` runs this command in every `dvc repro`. A store that cannot be
reached is a warning, not an error: `dvc repro` goes on.
"""

from __future__ import annotations

import click

from pipeline.errors import PipelineError
from pipeline.project import repo_root
from pipeline.tracking_uri import may_hold_running_runs, store_uri


@click.command("reap")
def command():
    """Mark KILLED the RUNNING runs of this host whose process is gone."""
    root = repo_root()
    if not may_hold_running_runs(store_uri(root)):  # the usual case, in a fraction of a second
        click.echo("no run left RUNNING by a process that is gone")
        return
    from pipeline import tracking

    try:
        reaped = tracking.reap_project_store(root)
    except PipelineError as exc:  # an unreachable store must not fail a `dvc repro` with no run
        click.secho(f"warning: no run was reaped: {exc}", err=True, fg="yellow")
        return
    if reaped:
        click.echo(
            f"marked KILLED {len(reaped)} run(s) whose process was gone: {', '.join(reaped)}"
        )
    else:
        click.echo("no run left RUNNING by a process that is gone")
