import click
from click.testing import CliRunner

from pipeline.cli import COMMANDS, cli


def test_help_lists_every_stage():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("prepare", "tokenize", "split", "train", "evaluate", "predict"):
        assert name in result.output


def test_each_command_has_help():
    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "--" in result.output


def test_pipeline_errors_become_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "split",
            "--params",
            str(tmp_path / "none.yaml"),
            "--in-dir",
            str(tmp_path),
            "--out-dir",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert "error: params file not found" in result.output
    assert "Traceback" not in result.output


def test_unknown_command():
    assert CliRunner().invoke(cli, ["fly"]).exit_code == 2


def _port_default(*path: str) -> int:
    command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    return next(p.default for p in command.params if p.name == "port")


def test_the_three_servers_can_run_at_once_with_their_defaults():
    ports = {
        "tracking-server": _port_default("tracking-server", "start"),
        "ui": _port_default("ui"),
        "serve": _port_default("serve"),
    }
    assert len(set(ports.values())) == 3, ports
