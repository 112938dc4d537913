import random

import numpy as np

from pipeline import dedup
from pipeline.dedup import DigestFiles, resolve


def expected(train: list[tuple[str, int]], test: set[str]) -> tuple[list[int], int, int, int]:
    """The in-memory rule: first copy kept, every copy of a two-label text dropped, then the
    kept texts also in the test set dropped."""
    labels: dict[str, set[int]] = {}
    for text, label in train:
        labels.setdefault(text, set()).add(label)
    seen, kept, duplicate, conflicting = set(), [], 0, 0
    for row, (text, _) in enumerate(train):
        if len(labels[text]) > 1:
            conflicting += 1
        elif text in seen:
            duplicate += 1
        else:
            seen.add(text)
            kept.append(row)
    in_test = sum(1 for row in kept if train[row][0] in test)
    return [row for row in kept if train[row][0] not in test], duplicate, conflicting, in_test


def test_matches_the_in_memory_rule_across_partitions_and_flushes(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup, "FLUSH_EVERY", 50)  # many appends to every partition
    rng = random.Random(3)
    texts = [f"리뷰 {i}" for i in range(400)]
    train = [(rng.choice(texts), rng.choice((0, 0, 1))) for _ in range(2000)]
    test = {rng.choice(texts) for _ in range(60)}
    digests = DigestFiles(tmp_path, "train")
    for text, label in train:
        digests.add(text, label)
    digests.flush()
    test_digests = DigestFiles(tmp_path, "test")
    for text in sorted(test):
        test_digests.add(text, 1)
    test_digests.flush()

    verdict = resolve(tmp_path, len(train), test=True)

    kept, duplicate, conflicting, in_test = expected(train, test)
    assert np.flatnonzero(verdict.keep).tolist() == kept
    assert (verdict.duplicate, verdict.conflicting, verdict.in_test) == (
        duplicate,
        conflicting,
        in_test,
    )
    assert verdict.kept_positive == sum(train[row][1] for row in kept)
    assert len(list(tmp_path.glob("train-*.bin"))) == dedup.PARTITIONS


def test_rows_are_numbered_in_the_order_added_across_flushes(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup, "FLUSH_EVERY", 2)
    digests = DigestFiles(tmp_path, "train")
    for text in ("가", "나", "가", "다", "나"):
        digests.add(text, 1)
    digests.flush()
    assert digests.count == 5
    verdict = resolve(tmp_path, 5, test=False)
    assert verdict.keep.tolist() == [True, True, False, True, False]
    assert (verdict.duplicate, verdict.conflicting, verdict.in_test) == (2, 0, 0)


def test_a_text_seen_with_both_labels_is_dropped_in_every_copy(tmp_path):
    digests = DigestFiles(tmp_path, "train")
    for text, label in (("애매", 1), ("좋다", 1), ("애매", 0), ("애매", 1)):
        digests.add(text, label)
    digests.flush()
    verdict = resolve(tmp_path, 4, test=False)
    assert verdict.keep.tolist() == [False, True, False, False]
    assert (verdict.duplicate, verdict.conflicting, verdict.kept_positive) == (0, 3, 1)
