"""The probes in benchmarks/: scored on a tiny trained project, logged to a real MLflow store."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import random
import re
import shutil
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from pipeline.ensemble import combine
from pipeline.io import read_jsonl, sha256_file, write_json, write_jsonl
from pipeline.serving import Bundle
from pipeline.tokenizers import whitespace_tokens
from pipeline.train import TrainSettings, train_variant, write_bundle
from tests.helpers import LSTM, REPO, TFIDF, clean_env, sh, tiny_vocab

POSITIVE, NEGATIVE = ["좋다", "최고", "감동"], ["싫다", "최악", "지루"]
NEUTRAL = ["영화", "배우", "장면", "음악", "이야기", "결말"]
SPLITS = ("validation", "test")
VARIANTS = ["chars", "lstm", "words_nb"]  # sorted, as the probes list a models folder
TRAIN = {  # params 'train' of the project's bundles
    "experiment": "e",
    "seed": 3,
    "variants": {
        "chars": TFIDF,
        "words_nb": {**TFIDF, "tokenizer": "space", "analyzer": "word", "nb_scaling": True},
        "lstm": {**LSTM, "max_length": 4, "epochs": 3},
    },
}


def _records(n: int, rng: random.Random) -> list[dict]:
    """Reviews of 1-12 words; the label follows the sentiment words, one in six flipped."""
    records = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(NEUTRAL, k=rng.randint(0, 10))
        words += rng.choices(POSITIVE if label else NEGATIVE, k=rng.randint(1, 2))
        rng.shuffle(words)
        if rng.random() < 1 / 6:
            label = 1 - label
        text = " ".join(words)
        records.append({"text": text, "label": label, "tokens": {"space": words}})
    return records


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder as `dvc repro` leaves it, in small: data/split and three trained
    bundles (character TF-IDF, NB-scaled word TF-IDF, an LSTM that reads 4 tokens)."""
    root = tmp_path_factory.mktemp("probes") / "project"
    rng = random.Random(7)
    splits = {
        "train": _records(160, rng),
        "validation": _records(60, rng),
        "test": _records(60, rng),
    }
    for name, records in splits.items():
        write_jsonl(root / "data" / "split" / f"{name}.jsonl", records)
    (root / "dvc.yaml").write_text("stages: {}\n", encoding="utf-8")
    vocab = tiny_vocab(splits["train"])
    write_json(root / "data" / "split" / "vocab" / "space.json", vocab)
    for variant in VARIANTS:
        settings = TrainSettings.from_params(TRAIN, variant)
        fit = {"train": splits["train"], "validation": splits["validation"]}
        write_bundle(train_variant(settings, fit, vocab), root / "models" / variant)
    return root


@pytest.fixture(scope="module")
def probes():
    """The two probe scripts as modules (slice_probe imports ensemble_probe beside it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "benchmarks"))
        return importlib.import_module("ensemble_probe"), importlib.import_module("slice_probe")


def _expected(project) -> tuple[dict, dict, dict]:
    """Independently of the probes: each bundle's P(positive) from raw text, labels, lengths."""
    probabilities, labels, lengths = {}, {}, {}
    for split in ("validation", "test"):
        records = read_jsonl(project / "data" / "split" / f"{split}.jsonl")
        texts = [r["text"] for r in records]
        labels[split] = np.array([r["label"] for r in records])
        lengths[split] = np.array([len(t) for t in whitespace_tokens(texts)])
        for variant in VARIANTS:
            bundle = Bundle(project / "models" / variant)
            probabilities.setdefault(variant, {})[split] = bundle.probabilities(texts)
    return probabilities, labels, lengths


def _files(root) -> dict:
    """Every file of the project but MLflow's, with its digest."""
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in root.rglob("*")
        if p.is_file()
        and p.relative_to(root).parts[0] not in ("mlruns", "mlartifacts")
        and p.name != "mlflow.db"
    }


def _only_run(client: MlflowClient, experiment: str = "probes"):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_ensemble_probe_logs_every_combination(project, probes, tracking_uri, monkeypatch):
    ensemble_probe, _ = probes
    monkeypatch.chdir(project)
    before = _files(project)
    result = CliRunner().invoke(ensemble_probe.command, [])
    assert result.exit_code == 0, result.output
    assert _files(project) == before  # nothing written into the project

    probabilities, labels, _ = _expected(project)
    expected = {}
    for size in (1, 2, 3):
        for members in itertools.combinations(VARIANTS, size):
            expected["+".join(members)] = {
                split: float(
                    np.mean((combine([probabilities[m][split] for m in members]) >= 0.5) == y)
                )
                for split, y in labels.items()
            }
    run = _only_run(MlflowClient())
    assert run.info.status == "FINISHED" and run.data.tags["probe"] == "ensemble_probe"
    params = run.data.params
    assert params["variants"] == ",".join(VARIANTS)
    digest = sha256_file(project / "data" / "split" / "test.jsonl")[:16]
    assert params["test_digest"] == digest
    for variant in VARIANTS:
        for split in ("validation", "test"):
            logged = run.data.metrics[f"{variant}/{split}_accuracy"]
            assert logged == pytest.approx(expected[variant][split])

    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/combinations.json")
    table = pd.DataFrame(logged["data"], columns=logged["columns"])
    assert len(table) == 7 and set(table["members"]) == set(expected)
    for row in table.itertuples():
        assert row.validation_accuracy == pytest.approx(expected[row.members]["validation"])
        assert row.test_accuracy == pytest.approx(expected[row.members]["test"])
    assert list(table["validation_accuracy"]) == sorted(table["validation_accuracy"], reverse=True)

    ensembles = {k: v for k, v in expected.items() if "+" in k}
    top = max(v["validation"] for v in ensembles.values())
    best = params["best_members"].replace(",", "+")
    assert ensembles[best]["validation"] == pytest.approx(top)
    assert run.data.metrics["best/test_accuracy"] == pytest.approx(ensembles[best]["test"])
    assert f"[{params['best_members'].replace(',', ', ')}]" in result.output


@pytest.mark.slow
def test_slice_probe_runs_as_documented_into_the_project_store(project, tmp_path):
    """`python benchmarks/slice_probe.py` from the project root, no MLFLOW_TRACKING_URI: the
    run lands in the project's own mlflow.db, as the pipeline's runs do."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    sh(
        [
            sys.executable,
            str(REPO / "benchmarks" / "slice_probe.py"),
            "--tokenizer",
            "space",
            "--edges",
            "2,4,100",
            "lstm",
            "chars",
        ],
        copy,
        env=clean_env(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")
    run = _only_run(client)
    assert run.info.status == "FINISHED" and run.data.tags["probe"] == "slice_probe"
    assert run.data.params["edges"] == "2,4,100" and run.data.params["variants"] == "lstm,chars"

    probabilities, labels, lengths = _expected(project)
    metrics = run.data.metrics
    for split in ("validation", "test"):
        slices = {
            "all": lengths[split] >= 0,
            "le2": lengths[split] <= 2,
            "3-4": (lengths[split] > 2) & (lengths[split] <= 4),
            "5-100": (lengths[split] > 4) & (lengths[split] <= 100),
        }
        for name, mask in slices.items():
            assert metrics[f"reviews/{split}/{name}"] == mask.sum()
            for variant in ("lstm", "chars"):
                p = probabilities[variant][split][mask]
                right = float(np.mean((p >= 0.5) == labels[split][mask]))
                assert metrics[f"{variant}/{split}/{name}"] == pytest.approx(right)
        assert metrics[f"reviews/{split}/gt100"] == 0
        assert f"lstm/{split}/gt100" not in metrics  # an empty slice has no accuracy
        assert "words_nb/validation/all" not in metrics  # not named, not scored
    assert (lengths["validation"] > 4).any() and (lengths["validation"] <= 2).any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chars", "gru"], "no trained bundle for 'gru' under models; found chars, lstm, words_nb"),
        (["chars"], "name at least 2 variants; got 1"),
        (["chars", "chars"], "a variant is named twice"),
        (
            ["--data-dir", "models/chars", "chars", "lstm"],
            "models/chars/validation.jsonl not found",
        ),
    ],
)
def test_ensemble_probe_errors_are_one_line(
    project, probes, tracking_uri, tmp_path, monkeypatch, args, message
):
    ensemble_probe, _ = probes
    monkeypatch.chdir(project)
    result = CliRunner().invoke(ensemble_probe.command, args)
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()  # the store was never opened: no run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--edges", "10,5"], "--edges wants increasing whole numbers of tokens"),
        (["--edges", "0,5"], "--edges wants increasing whole numbers of tokens"),
        (["--edges", "ten"], "--edges wants increasing whole numbers of tokens"),
        (["--tokenizer", "morph"], "the split holds no tokens of tokenizer 'morph'; it has space"),
    ],
)
def test_slice_probe_errors_are_one_line(
    project, probes, tracking_uri, tmp_path, monkeypatch, args, message
):
    _, slice_probe = probes
    monkeypatch.chdir(project)
    result = CliRunner().invoke(slice_probe.command, args)
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_slices_cover_every_review_once(probes):
    _, slice_probe = probes
    lengths = np.array([0, 1, 10, 11, 30, 31, 60, 61, 139])
    masks = slice_probe.slice_masks(lengths, [10, 30, 60])
    assert list(masks) == ["all", "le10", "11-30", "31-60", "gt60"]
    assert masks["all"].all()
    assert (sum(masks[name].astype(int) for name in list(masks)[1:]) == 1).all()
    assert lengths[masks["gt60"]].tolist() == [61, 139]
    assert slice_probe.parse_edges("10,30,60") == [10, 30, 60]


def test_combinations_rank_by_validation_smaller_first_on_ties(probes):
    ensemble_probe, _ = probes
    p = {
        "a": {"validation": np.array([0.9, 0.2]), "test": np.array([0.9, 0.9])},
        "b": {"validation": np.array([0.6, 0.4]), "test": np.array([0.1, 0.1])},
    }
    labels = {"validation": np.array([1, 0]), "test": np.array([1, 0])}
    rows = ensemble_probe.combination_scores(p, labels)
    assert [row["members"] for row in rows] == ["a", "b", "a+b"]  # all three at 1.0
    assert [row["test_accuracy"] for row in rows] == [0.5, 0.5, 0.5]
    assert ensemble_probe.best_ensemble(rows)["members"] == "a+b"


@pytest.fixture(scope="module")
def member_probe():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "benchmarks"))
        return importlib.import_module("member_probe")


def test_member_probe_ranks_candidates_beside_the_variants_and_caches_them(
    project, member_probe, tracking_uri, tmp_path, monkeypatch
):
    monkeypatch.chdir(project)
    before = _files(project)
    args = ["--cache-dir", str(tmp_path / "cache"), "--vocab-size", "40", "--folds", "3"]
    args += ["--candidates", "sp_nb,char5_nb", "chars", "words_nb"]
    first = CliRunner().invoke(member_probe.command, args)
    assert first.exit_code == 0, first.output
    assert _files(project) == before  # the cache lies outside the project
    (cache,) = (tmp_path / "cache").iterdir()
    assert cache.name == sha256_file(project / "data" / "split" / "validation.jsonl")[:16]
    assert (cache / "sp-unigram-40.model").is_file()

    probabilities, labels, _ = _expected(project)
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("probes").experiment_id]
    )
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["probe"] == "member_probe"
    assert "sp_nb/fit_seconds" in run.data.metrics
    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/combinations.json")
    table = pd.DataFrame(logged["data"], columns=logged["columns"]).set_index("members")
    assert len(table) == 15  # every combination of two variants and two candidates
    pair = table.loc["chars+words_nb"]
    for split in ("validation", "test"):
        mean = combine([probabilities[m][split] for m in ("chars", "words_nb")])
        assert pair[f"mean_{split}_accuracy"] == pytest.approx(
            float(np.mean((mean >= 0.5) == labels[split]))
        )
        assert 0 <= pair[f"stacked_{split}_accuracy"] <= 1
    assert np.isnan(table.loc["chars", "stacked_validation_accuracy"])  # one member: no stack

    again = CliRunner().invoke(member_probe.command, args)
    assert again.exit_code == 0, again.output
    second = max(
        MlflowClient().search_runs([run.info.experiment_id]), key=lambda r: r.info.start_time
    )
    assert "sp_nb/fit_seconds" not in second.data.metrics  # read from the cache, not refitted
    assert second.data.metrics["sp_nb/test_accuracy"] == run.data.metrics["sp_nb/test_accuracy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidates", "gru_nb", "chars"], "unknown candidate(s) 'gru_nb'; choose from"),
        (["--candidates", "", "chars"], "name at least 2 variants, or a candidate"),
        (["--candidates", "char5_nb", "gru"], "no trained bundle for 'gru' under models"),
        (["--candidates", "bilstm_sp"], "params.yaml not found: an LSTM candidate takes its"),
    ],
)
def test_member_probe_errors_are_one_line(
    project, member_probe, tracking_uri, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(project)
    result = CliRunner().invoke(member_probe.command, ["--cache-dir", str(tmp_path), *args])
    assert result.exit_code == 1
    assert f"error: {message}" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mlflow.db").exists()


@pytest.fixture(scope="module")
def seed_probe():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "benchmarks"))
        return importlib.import_module("seed_probe")


def _params_with(tmp_path, members: list[str] | None):
    """The project's params.yaml: the repository's, with the bundles' train section and
    `members` as the ensemble's."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["train"] = {**TRAIN, "defaults": params["train"]["defaults"]}
    params["evaluate"]["ensemble"]["members"] = members or []
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


def test_seed_probe_retrains_the_lstm_members_and_logs_the_spread(
    project, seed_probe, tracking_uri, tmp_path, monkeypatch
):
    monkeypatch.chdir(project)
    before = _files(project)
    params = _params_with(tmp_path, ["chars", "lstm"])
    args = ["--params", str(params), "--cache-dir", str(tmp_path / "cache"), "--seeds", "5,8"]
    first = CliRunner().invoke(seed_probe.command, args)
    assert first.exit_code == 0, first.output
    assert _files(project) == before

    probabilities, labels, _ = _expected(project)
    split_dir = project / "data" / "split"
    records = {s: read_jsonl(split_dir / f"{s}.jsonl") for s in ("train", *SPLITS)}
    expected = {}
    for seed in (3, 5, 8):  # 3: the bundles' own
        lstm = probabilities["lstm"]
        if seed != 3:
            settings = dataclasses.replace(TrainSettings.from_params(TRAIN, "lstm"), seed=seed)
            fit = {s: records[s] for s in ("train", "validation")}
            trained = train_variant(settings, fit, tiny_vocab(records["train"]))
            write_bundle(trained, tmp_path / f"lstm{seed}")
            model = Bundle(tmp_path / f"lstm{seed}")
            lstm = {s: model.probabilities([r["text"] for r in records[s]]) for s in SPLITS}
        for split in SPLITS:
            both = combine([probabilities["chars"][split], lstm[split]])
            expected[seed, split] = float(np.mean((both >= 0.5) == labels[split]))

    run = _only_run(MlflowClient())
    assert run.info.status == "FINISHED" and run.data.tags["probe"] == "seed_probe"
    metrics = run.data.metrics
    for (seed, split), value in expected.items():
        assert metrics[f"seed_{seed}/ensemble/{split}_accuracy"] == pytest.approx(value)
    test = [expected[seed, "test"] for seed in (3, 5, 8)]
    assert metrics["spread/ensemble/test_accuracy"] == pytest.approx(max(test) - min(test))
    assert metrics["mean/ensemble/test_accuracy"] == pytest.approx(np.mean(test))
    assert "seed_5/chars/test_accuracy" in metrics  # every member's accuracy, per seed
    assert "ensemble spread over 3 seeds" in first.output

    shutil.rmtree(next((tmp_path / "cache").iterdir()) / "seed5")  # the retrained bundles
    again = CliRunner().invoke(seed_probe.command, args)
    assert again.exit_code == 0, again.output
    assert not (next((tmp_path / "cache").iterdir()) / "seed5").exists()  # nothing retrained
    assert _table(again.output) == _table(first.output)


def _table(output: str) -> list[str]:
    """The seed probe's table: its header line to its spread line."""
    lines = output.splitlines()
    start = lines.index("seed  ensemble val / test  lstm val / test")
    return lines[start : start + 5]


@pytest.mark.parametrize(
    ("members", "args", "message"),
    [
        (["chars", "lstm"], ["--seeds", "1,x"], "--seeds takes integers separated by commas"),
        (["chars", "lstm"], ["--seeds", "1,1"], "--seeds takes distinct non-negative integers"),
        (["chars", "lstm"], ["--seeds", "3"], "seed 3 is the bundles' own (train.seed)"),
        (["chars", "words_nb"], ["--seeds", "1"], "no LSTM among chars, words_nb: nothing"),
        (None, ["--seeds", "1"], "params.yaml names no ensemble members: name the VARIANTS"),
        (None, ["--seeds", "1", "chars", "gru"], "no trained bundle for 'gru' under models"),
    ],
)
def test_seed_probe_errors_are_one_line(
    project, seed_probe, tracking_uri, tmp_path, monkeypatch, members, args, message
):
    monkeypatch.chdir(project)
    params = _params_with(tmp_path, members)
    cli = ["--params", str(params), "--cache-dir", str(tmp_path / "cache"), *args]
    result = CliRunner().invoke(seed_probe.command, cli)
    assert result.exit_code == 1
    assert (
        result.output.startswith("error: ")
        and message in result.output
        and "Traceback" not in result.output
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_seed_probe_runs_as_documented_and_shows_only_its_own_lines(project, tmp_path):
    """`python benchmarks/seed_probe.py` from the project root, as docs/experiments.md shows
    it: the run lands in the project's mlflow.db, and the terminal holds the probe's lines."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    _params_with(copy, ["lstm", "words_nb"])
    probe = [sys.executable, str(REPO / "benchmarks/seed_probe.py")]
    result = sh(
        [*probe, "--cache-dir", str(tmp_path / "cache"), "--seeds", "1,2"],
        copy,
        env=clean_env(PYTHONPATH=str(REPO)),
        timeout=300,
    )
    assert "ensemble spread over 3 seeds" in result.stdout
    noise = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if re.match(r"[IWE]\d{4} |WARNING: All log messages|.*(oneDNN|cuda|INFO mlflow)", line)
    ]
    assert not noise, noise
    run = _only_run(MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}"))
    assert run.data.params["members"] == "lstm,words_nb" and run.data.params["seeds"] == "1,2"
