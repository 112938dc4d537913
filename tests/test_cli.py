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
