import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from pipeline.errors import PipelineError
from pipeline.io import read_jsonl, write_jsonl
from pipeline.split import SplitConfig, _stratified, assign, run
from tests.helpers import tiny_records

CFG = SplitConfig(seed=7, validation_size=0.25, test_size=0.25, min_freq=1, max_vocab=100)
UNTAGGED = {"space": False}


def split(tmp_path, train, test=None, cfg=CFG, tagged=UNTAGGED, name="out"):
    """run() on JSON Lines files made of `train` and `test`; the splits read back."""
    write_jsonl(tmp_path / "train.jsonl", train)
    test_path = None
    if test is not None:
        test_path = tmp_path / "test.jsonl"
        write_jsonl(test_path, test)
    out = tmp_path / name
    sizes, vocabs = run(tmp_path / "train.jsonl", test_path, cfg, tagged, out)
    splits = {part: read_jsonl(out / f"{part}.jsonl") for part in sizes}
    assert sizes == {part: len(records) for part, records in splits.items()}
    return splits, vocabs


def test_three_way_stratified_split_is_deterministic(tmp_path):
    records = tiny_records()
    splits, _ = split(tmp_path, records)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [12, 6, 6]
    for part in splits.values():
        assert sum(r["label"] for r in part) * 2 == len(part)
    again, _ = split(tmp_path, records, name="again")
    assert again == splits


def test_same_records_in_the_same_order_as_splitting_the_records_themselves(tmp_path):
    """Splitting row numbers draws what sklearn draws over the records: the splits of the
    in-memory stage this one replaced."""
    records = [
        {"text": f"t{i}", "label": int(i % 3 == 0), "tokens": {"space": [f"t{i}"]}}
        for i in range(200)
    ]
    labels = [r["label"] for r in records]
    rest, test = train_test_split(records, test_size=0.25, random_state=7, stratify=labels)
    share = 0.25 / (1 - 0.25)
    train, validation = train_test_split(
        rest, test_size=share, random_state=7, stratify=[r["label"] for r in rest]
    )
    splits, _ = split(tmp_path, records)
    assert splits == {"train": train, "validation": validation, "test": test}


def test_assign_with_a_given_test_file_splits_validation_only():
    labels = np.array([0, 1] * 20)
    parts = assign(labels, test_given=True, cfg=CFG)
    assert list(parts) == ["train", "validation"]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(40))


def test_given_test_set_is_kept_whole_and_vocab_comes_from_train_only(tmp_path):
    train = tiny_records()
    test = [{"text": "새말", "label": 1, "tokens": {"space": ["새말"]}}]
    splits, vocabs = split(tmp_path, train, test)
    assert splits["test"] == test
    assert len(splits["validation"]) == 6  # validation_size of the training file
    assert "새말" not in vocabs["space"]["tokens"]
    assert "새" not in vocabs["space"]["pieces"]
    validation_only = {t for r in splits["validation"] for t in r["tokens"]["space"]} - {
        t for r in splits["train"] for t in r["tokens"]["space"]
    }
    assert not validation_only & set(vocabs["space"]["tokens"])


def test_pieces_are_the_characters_of_training_forms_without_tags(tmp_path):
    train = [
        {"text": t, "label": i % 2, "tokens": {"morph": [f"{t}/NNG", "다/EF"]}}
        for i, t in enumerate(["영화", "영상", "감동", "화면"] * 2)
    ]
    _, vocabs = split(tmp_path, train, tagged={"morph": True})
    pieces = vocabs["morph"]["pieces"]
    assert "/" not in pieces and "N" not in pieces
    assert set(pieces) <= set("영화상감동면다")
    assert pieces[0] == "다"  # the most frequent character comes first


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in tiny_records()]
    path.write_text("\n\n".join(lines) + "\n\n", encoding="utf-8")
    sizes, _ = run(path, None, CFG, UNTAGGED, tmp_path / "out")
    assert sum(sizes.values()) == len(lines)


def test_too_few_documents_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match="cannot split 3 documents"):
        split(tmp_path, tiny_records()[:3])


@pytest.mark.parametrize("seed", [0, 7, 42])
@pytest.mark.parametrize("size", [0.1, 0.25, 1 / 3])
def test_the_draw_is_sklearn_s_for_any_labels(seed, size):
    """The int32 stratified draw gives sklearn's `train_test_split` rows, in its order, for two
    and three labels, balanced or not, and class counts that tie."""
    rng = np.random.RandomState(seed)
    for labels in (
        rng.randint(0, 2, 1001),
        rng.choice([0, 1, 2], 997, p=[0.6, 0.3, 0.1]),
        np.repeat([0, 1, 2], 50),
    ):
        labels = labels.astype(np.int8)
        rows = np.arange(len(labels))
        want = train_test_split(rows, test_size=size, random_state=seed, stratify=labels)
        got = _stratified(rows.astype(np.int32), labels, size, seed)
        assert [part.tolist() for part in got] == [part.tolist() for part in want]


def test_a_label_with_one_document_is_an_error_naming_the_counts():
    with pytest.raises(PipelineError, match=r"label counts \{0: 9, 1: 1\}"):
        _stratified(np.arange(10, dtype=np.int32), np.array([0] * 9 + [1], np.int8), 0.2, 7)
