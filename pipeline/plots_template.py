"""`plots-template`: write the page `dvc plots show` renders into, usable offline.

.dvc/config names it as DVC's `plots.html_template`; `make setup` writes it.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.io import atomic_file
from pipeline.plots import offline_page


@click.command("plots-template")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=".dvc/plots/offline.html",
    show_default=True,
    help="Where to write the page (.dvc/config names this one as plots.html_template).",
)
def command(out: Path):
    """Write the page `dvc plots show` renders into, with Vega inlined so it works offline."""
    with atomic_file(out) as tmp:
        tmp.write_text(offline_page(), encoding="utf-8")
    click.echo(f"wrote {out}")
