"""benchmarks/scale.py's synthetic corpus: k copies of NSMC that de-duplication keeps apart."""

from __future__ import annotations

import importlib
import json

import pytest

from pipeline.io import read_jsonl, write_jsonl
from pipeline.prepare import Table, run
from pipeline.sources import NSMC_FORMAT, TableRows
from tests.helpers import REPO, write_tsv


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("scale")


def test_every_copy_has_its_own_tail(scale):
    tails = [scale.tail(copy) for copy in range(1, 64)]
    assert len(set(tails)) == len(tails)
    assert scale.tail(1) == "ㅎㅎ" and scale.tail(9) == "ㅎㅎㅎㅎ"


def test_k_copies_keep_k_times_the_documents_and_the_balance(scale, tmp_path):
    nsmc = tmp_path / "nsmc"
    train = [(1, "좋은 영화", 1), (2, "별로", 0), (3, "", 1), (4, "좋은 영화", 1), (5, "같이", 0)]
    write_tsv(nsmc / "ratings_train.txt", train)
    write_tsv(nsmc / "ratings_test.txt", [(9, "같이", 0), (10, "최고", 1)])
    scale.write_corpus(nsmc, 3, tmp_path / "corpus")

    def table(name):
        path = tmp_path / "corpus" / name
        return Table(path, TableRows(path, NSMC_FORMAT), NSMC_FORMAT)

    report = run(table("ratings_train.txt"), table("ratings_test.txt"), tmp_path / "out")
    assert report["rows_read"] == {"train": 15, "test": 6}
    assert report["dropped"] == {
        "empty_train": 3,
        "empty_test": 0,
        "duplicate": 3,
        "conflicting_label": 0,
        "in_test_set": 3,
    }
    assert report["rows_kept"] == {"train": 6, "test": 6}
    assert report["positive_share"]["train"] == 0.5


def test_limit_takes_the_first_rows(scale, tmp_path):
    nsmc = tmp_path / "nsmc"
    write_tsv(nsmc / "ratings_train.txt", [(i, f"리뷰 {i}", i % 2) for i in range(10)])
    write_tsv(nsmc / "ratings_test.txt", [(i, f"시험 {i}", i % 2) for i in range(10)])
    scale.write_corpus(nsmc, 2, tmp_path / "corpus", limit=4)
    lines = (tmp_path / "corpus/ratings_train.txt").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [
        *(f"{i}-0\t리뷰 {i}\t{i % 2}" for i in range(4)),
        *(f"{i}-1\t리뷰 {i} ㅎㅎ\t{i % 2}" for i in range(4)),
    ]


def test_k_copies_of_a_split_mark_each_copy_s_text_and_tokens(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    scale_models = importlib.import_module("scale_models")
    split = tmp_path / "split"
    (split / "vocab").mkdir(parents=True)
    (split / "tokenizers.json").write_text('{"morph": {"tags": true}, "space": {}}')
    record = {"text": "좋은 영화", "label": 1, "tokens": {"morph": ["좋/VA"], "space": ["좋은"]}}
    for name in scale_models.SPLITS:
        write_jsonl(split / f"{name}.jsonl", [record, {**record, "text": " ", "tokens": {}}])
    sizes = scale_models.write_split(split, 3, tmp_path / "out")
    assert sizes == {"train": 6, "validation": 6, "test": 6}
    copies = read_jsonl(tmp_path / "out/train.jsonl")
    assert copies[:2] == read_jsonl(split / "train.jsonl")
    assert copies[4]["text"] == "좋은 영화 ㅠㅠ" and copies[4]["label"] == 1
    assert copies[4]["tokens"] == {"morph": ["좋/VA", "ㅠㅠ/SW"], "space": ["좋은", "ㅠㅠ"]}
    assert copies[5]["text"] == " "  # an empty text stays empty


def test_a_split_folder_without_its_files_is_refused(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    scale_models = importlib.import_module("scale_models")
    with pytest.raises(FileNotFoundError):
        scale_models.write_split(tmp_path / "missing", 2, tmp_path / "out")


def test_merging_runs_keeps_the_model_stages_results(scale, tmp_path):
    out = tmp_path / "scale.json"
    model_runs = [{"code": "HEAD@1", "scale": 1, "stages": {}}]
    old_run = {"code": "HEAD@0", "scale": 1, "stages": {}}
    out.write_text(json.dumps({"runs": [old_run], "model_runs": model_runs}))
    new_run = {"code": "HEAD@2", "scale": 1, "stages": {}}
    merged = scale.merged(out, [new_run])
    assert merged["runs"] == [new_run]
    assert merged["model_runs"] == model_runs


def test_tokenized_copies_keep_k_times_the_documents_each_with_its_tail(scale, tmp_path):
    scale_models = importlib.import_module("scale_models")
    tokenized = tmp_path / "tokenized"
    tokenizers = {"morph": {"method": "kiwi", "tags": True}, "space": {"method": "whitespace"}}
    record = {"text": "좋은 영화", "label": 1, "tokens": {"morph": ["좋/VA"], "space": ["좋은"]}}
    write_jsonl(tokenized / "train.jsonl", [record, {**record, "label": 0}])
    write_jsonl(tokenized / "test.jsonl", [record])
    (tokenized / "tokenizers.json").write_text(json.dumps(tokenizers))
    sizes = scale_models.write_copies(tokenized, ("train", "test"), 3, tmp_path / "out")
    documents = sum(sizes.values())
    train = read_jsonl(tmp_path / "out/train.jsonl")
    assert documents == 9 and len(train) == 6
    assert train[:2] == read_jsonl(tokenized / "train.jsonl")
    third = train[4]
    assert third["text"] == f"좋은 영화 {scale.tail(2)}" and third["label"] == 1
    assert third["tokens"] == {
        "morph": ["좋/VA", f"{scale.tail(2)}/SW"],
        "space": ["좋은", scale.tail(2)],
    }
