"""Click options the stage commands share: the params file, input folders, other paths."""

from pathlib import Path

import click

params_option = click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path),
    default="params.yaml",
    show_default=True,
    help="The params file whose section this command reads.",
)


def input_dir(flag: str, help: str):
    """A required folder that must already exist (another stage's output)."""
    return click.option(
        flag,
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        required=True,
        help=help,
    )


def path_option(flag: str, help: str):
    """A required path not checked up front: an output, a cache, or an input only some settings
    read (prepare's sample file)."""
    return click.option(flag, type=click.Path(path_type=Path), required=True, help=help)
