"""How `split` grows with the corpus, on k copies of a tokenized NSMC (no Kiwi run): its time and
peak memory for this tree's code and (optionally) another revision's, and the sha256 of what
each wrote.

    python benchmarks/scale_split.py --project benchmarks/runs/<time> --scales 1,16 \\
        --baseline c222d01 --out benchmarks/scale.json

--project is a project whose `tokenize` ran on NSMC (a `make benchmark` workspace): its
data/tokenized files are copied k times as benchmarks/scale_models.py copies a split
(`write_copies`: copy j >= 1 appends ' ' + tail(j) to the text and as one more token), and its
params.yaml gives the `split` section. At 16x, benchmarks/scale.py spends about 17 minutes in
Kiwi before `split` starts; this measures the same stage on the same number of documents in a
few. Each run goes under "split_runs" in --out, merged by (code, scale).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import click
from scale import REPO, baseline_tree, merged, revision_label, run_stage, tree_label
from scale_models import write_copies

FILES = ("train", "test")
OUTPUTS = ("train.jsonl", "validation.jsonl", "test.jsonl")


def measure(code: Path, label: str, k: int, data: Path, documents: int, project: Path) -> dict:
    folder = data.parent / f"{k}x-{code.name}"
    folder.mkdir(parents=True)
    shutil.copy(project / "params.yaml", folder)
    result = run_stage(code, folder, "split", ["split", "--in-dir", str(data), "--out-dir", "out"])
    digest = hashlib.sha256()
    for name in OUTPUTS:
        digest.update(hashlib.sha256((folder / "out" / name).read_bytes()).digest())
    shutil.rmtree(folder)
    return {
        "code": label,
        "scale": k,
        **result,
        "documents": documents,
        "cpu_seconds_per_1000_docs": round(result["cpu_seconds"] / documents * 1000, 3),
        "outputs_sha256": digest.hexdigest(),
    }


@click.command()
@click.option("--project", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--scales", default="1,16", show_default=True, help="Comma-separated k values.")
@click.option("--baseline", default=None, help="A git revision to measure beside this tree.")
@click.option("--work-dir", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "benchmarks/scale.json")
def main(project, scales, baseline, work_dir, out):
    """Time and peak memory of `split` on k times a tokenized NSMC."""
    work = Path(work_dir or tempfile.mkdtemp(prefix="scale-split-")).resolve()
    codes = [(REPO, tree_label())]
    if baseline:
        codes.insert(0, (baseline_tree(baseline, work / "baseline"), revision_label(baseline)))
    runs = []
    for k in (int(k) for k in scales.split(",")):
        data = work / f"tokenized-{k}x"
        documents = sum(write_copies(project.resolve() / "data/tokenized", FILES, k, data).values())
        for code, label in codes:
            runs.append(measure(code, label, k, data, documents, project.resolve()))
            click.echo(f"{label} {k}x split: {runs[-1]}", err=True)
        shutil.rmtree(data)
    result = merged(out, runs, "split_runs")
    result["split_runs_date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
