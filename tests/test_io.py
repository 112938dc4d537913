import gzip
import json

import pytest

from pipeline.io import count_lines, iter_jsonl, read_jsonl, scratch_dir, write_jsonl

RECORDS = [{"text": "정말 재밌다", "label": 1}, {"text": "별로", "label": 0}]


def test_jsonl_round_trip_skips_blank_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, RECORDS)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n")
    assert read_jsonl(path) == RECORDS


def test_a_gzipped_split_reads_like_the_plain_one(tmp_path):
    packed = tmp_path / "train.jsonl.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS)
    assert read_jsonl(packed) == RECORDS


def test_iter_jsonl_streams_records_and_skips_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": "가"}\n', encoding="utf-8")
    records = iter_jsonl(path)
    assert next(records) == {"a": 1}
    assert list(records) == [{"a": "가"}]
    assert count_lines(path) == 3


def test_iter_jsonl_yields_the_good_lines_before_a_bad_one(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    records = iter_jsonl(path)
    assert next(records) == {"a": 1}
    with pytest.raises(json.JSONDecodeError):
        next(records)


def test_scratch_dir_is_beside_the_path_and_removed(tmp_path):
    with scratch_dir(tmp_path / "out") as scratch:
        assert scratch.parent == tmp_path
        (scratch / "f").write_text("x")
    assert not scratch.exists()
    assert list(tmp_path.iterdir()) == []
