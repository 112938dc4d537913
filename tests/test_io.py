import gzip
import json

from pipeline.io import read_jsonl, write_jsonl

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
