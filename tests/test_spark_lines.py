"""The spark engine's files: part files joined in partition order (not in name order), records
written as pipeline.io writes them (the jobs themselves run in tests/test_spark_cleaning.py and
tests/test_spark_tokens.py)."""

from __future__ import annotations

import json

from pipeline.io import write_jsonl
from pipeline.spark_lines import json_line, part_files


def test_part_files_in_partition_order(tmp_path):
    for name in ("part-00010", "part-00002", "part-100000", "_SUCCESS", ".part-00002.crc"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert [p.name for p in part_files(tmp_path)] == ["part-00002", "part-00010", "part-100000"]


def test_a_json_line_is_write_jsonl_s_line(tmp_path):
    record = {"text": '좋은 "영화"\u2028끝', "label": 1, "tokens": {"space": ["좋은"]}}
    write_jsonl(tmp_path / "one.jsonl", [record])
    assert (tmp_path / "one.jsonl").read_text(encoding="utf-8") == json_line(record) + "\n"
    assert json.loads(json_line(record)) == record
