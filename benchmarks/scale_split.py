"""How `split` grows with the corpus, on k copies of a tokenized NSMC (no Kiwi run): its time and
peak memory for this tree's code and (optionally) another revision's, and the sha256 of what
each wrote.

    python benchmarks/scale_split.py --project benchmarks/runs/<time> --scales 1,16 \\
        --baseline c222d01 --out benchmarks/scale.json

--project is a project whose `tokenize` ran on NSMC (a `make benchmark` workspace): its
data/tokenized files are copied k times as benchmarks/scale.py copies the raw files (copy 0 is
the record itself; copy j >= 1 appends ' ' + tail(j) to the text and tail(j) as one more token to
each tokenizer's tokens, '/SW' after it for a tagging tokenizer), and its params.yaml gives the
`split` section. At 16x, benchmarks/scale.py spends about 17 minutes in Kiwi before `split`
starts; this measures the same stage on the same number of documents in a few. Each run goes
under "split_runs" in --out, merged by (code, scale).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import click
from scale import REPO, baseline_tree, revision_label, run_stage, tail, tree_label

FILES = ("train.jsonl", "test.jsonl")
OUTPUTS = ("train.jsonl", "validation.jsonl", "test.jsonl")


def write_copies(tokenized: Path, k: int, dest: Path) -> int:
    """`tokenized`'s files k times over in `dest`; the documents written."""
    dest.mkdir(parents=True)
    shutil.copy(tokenized / "tokenizers.json", dest)
    configs = json.loads((tokenized / "tokenizers.json").read_text(encoding="utf-8"))
    tags = {name: config.get("tags", False) for name, config in configs.items()}
    documents = 0
    for name in FILES:
        lines = (tokenized / name).read_text(encoding="utf-8").splitlines()
        with (dest / name).open("w", encoding="utf-8") as out:
            for copy in range(k):
                for line in lines:
                    out.write((copied(line, copy, tags) if copy else line) + "\n")
            documents += k * len(lines)
    return documents


def copied(line: str, copy: int, tags: dict[str, bool]) -> str:
    record = json.loads(line)
    mark = tail(copy)
    record["text"] += " " + mark
    record["tokens"] = {
        name: [*tokens, mark + ("/SW" if tags[name] else "")]
        for name, tokens in record["tokens"].items()
    }
    return json.dumps(record, ensure_ascii=False)


def measure(code: Path, label: str, k: int, data: Path, project: Path, folder: Path) -> dict:
    folder.mkdir(parents=True)
    shutil.copy(project / "params.yaml", folder)
    result = run_stage(code, folder, "split", ["split", "--in-dir", str(data), "--out-dir", "out"])
    documents = sum(1 for name in FILES for _ in (data / name).open("rb"))
    digest = hashlib.sha256()
    for name in OUTPUTS:
        digest.update(hashlib.sha256((folder / "out" / name).read_bytes()).digest())
    return {
        "code": label,
        "scale": k,
        **result,
        "documents": documents,
        "cpu_seconds_per_1000_docs": round(result["cpu_seconds"] / documents * 1000, 3),
        "outputs_sha256": digest.hexdigest(),
    }


def merged(out: Path, runs: list[dict]) -> dict:
    result = json.loads(out.read_text()) if out.exists() else {"runs": []}
    replaced = {(r["code"].split("@")[0], r["scale"]) for r in runs}
    kept = [
        r
        for r in result.get("split_runs", [])
        if (r["code"].split("@")[0], r["scale"]) not in replaced
    ]
    result["split_runs"] = sorted(kept + runs, key=lambda r: (r["scale"], r["code"]))
    result["split_runs_date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return result


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
        write_copies(project.resolve() / "data/tokenized", k, data)
        for code, label in codes:
            folder = work / f"{k}x-{code.name}"
            runs.append(measure(code, label, k, data, project.resolve(), folder))
            click.echo(f"{label} {k}x split: {runs[-1]}", err=True)
            shutil.rmtree(folder)
        shutil.rmtree(data)
    out.write_text(json.dumps(merged(out, runs), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
