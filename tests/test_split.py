import pytest

from pipeline.errors import PipelineError
from pipeline.split import SplitConfig, run
from tests.helpers import tiny_records

CFG = SplitConfig(seed=7, validation_size=0.25, test_size=0.25, min_freq=1, max_vocab=100)
UNTAGGED = {"space": False}


def test_three_way_stratified_split_is_deterministic():
    records = tiny_records()
    splits, _ = run(records, None, CFG, UNTAGGED)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [12, 6, 6]
    for part in splits.values():
        assert sum(r["label"] for r in part) * 2 == len(part)
    again, _ = run(records, None, CFG, UNTAGGED)
    assert again == splits


def test_given_test_set_is_kept_whole_and_vocab_comes_from_train_only():
    train = tiny_records()
    test = [{"text": "새말", "label": 1, "tokens": {"space": ["새말"]}}]
    splits, vocabs = run(train, test, CFG, UNTAGGED)
    assert splits["test"] == test
    assert len(splits["validation"]) == 6  # validation_size of the training file
    assert "새말" not in vocabs["space"]["tokens"]
    assert "새" not in vocabs["space"]["pieces"]
    validation_only = {t for r in splits["validation"] for t in r["tokens"]["space"]} - {
        t for r in splits["train"] for t in r["tokens"]["space"]
    }
    assert not validation_only & set(vocabs["space"]["tokens"])


def test_pieces_are_the_characters_of_training_forms_without_tags():
    train = [
        {"text": t, "label": i % 2, "tokens": {"morph": [f"{t}/NNG", "다/EF"]}}
        for i, t in enumerate(["영화", "영상", "감동", "화면"] * 2)
    ]
    _, vocabs = run(train, None, CFG, {"morph": True})
    pieces = vocabs["morph"]["pieces"]
    assert "/" not in pieces and "N" not in pieces
    assert set(pieces) <= set("영화상감동면다")
    assert pieces[0] == "다"  # the most frequent character comes first


def test_too_few_documents_is_an_error():
    with pytest.raises(PipelineError, match="cannot split"):
        run(tiny_records()[:3], None, CFG, UNTAGGED)
