"""The click options the stage commands share: what each accepts, and the one-line usage error
of what it refuses."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.options import input_dir, params_option, path_option


@click.command()
@params_option
@input_dir("--data-dir", help="An earlier stage's output.")
@path_option("--out-dir", help="Where to write.")
def show(params_path: Path, data_dir: Path, out_dir: Path):
    click.echo(f"{type(params_path).__name__} {params_path}")
    click.echo(f"{type(data_dir).__name__} {data_dir}")
    click.echo(f"{type(out_dir).__name__} {out_dir}")


def invoke(*args: str):
    return CliRunner().invoke(show, list(args))


def test_paths_arrive_as_paths_with_the_params_default(tmp_path):
    result = invoke("--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "not-yet"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "PosixPath params.yaml",
        f"PosixPath {tmp_path}",
        f"PosixPath {tmp_path / 'not-yet'}",
    ]
    given = invoke("--params", "other.yaml", "--data-dir", str(tmp_path), "--out-dir", "x")
    assert given.output.splitlines()[0] == "PosixPath other.yaml"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "missing", "--out-dir", "x"], "Directory 'missing' does not exist"),
        (["--data-dir", "{file}", "--out-dir", "x"], "is a file"),
        (["--data-dir", "{dir}"], "Missing option '--out-dir'"),
        (["--out-dir", "x"], "Missing option '--data-dir'"),
    ],
)
def test_a_missing_or_wrong_input_is_a_usage_error(tmp_path, args, message):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    args = [a.format(file=tmp_path / "a-file", dir=tmp_path) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
