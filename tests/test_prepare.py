import json

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import PipelineError
from pipeline.prepare import DataConfig, run
from pipeline.sources import Row
from tests.conftest import write_tsv


def rows(*pairs):
    return [Row(i + 2, text, label) for i, (text, label) in enumerate(pairs)]


def test_cleans_deduplicates_and_removes_test_overlap():
    train = rows(
        ("  좋은\t영화  ", 1),  # normalised to "좋은 영화"
        ("좋은 영화", 1),  # duplicate of the first after normalisation
        ("애매", 1),
        ("애매", 0),  # same text, both labels: both dropped
        ("", 0),
        (None, 1),  # empty
        ("시험에도 있음", 0),  # also in the test set
        ("별로", 0),
    )
    test = rows(("시험에도 있음", 0), ("   ", 1), ("시험에도 있음", 0))
    prepared = run(train, test)
    assert prepared.train == [{"text": "좋은 영화", "label": 1}, {"text": "별로", "label": 0}]
    assert prepared.test == [{"text": "시험에도 있음", "label": 0}] * 2  # test kept as given
    assert prepared.report["dropped"] == {
        "empty_train": 2,
        "empty_test": 1,
        "duplicate": 1,
        "conflicting_label": 2,
        "in_test_set": 1,
    }
    assert prepared.report["positive_share"]["train"] == 0.5


def test_nfc_normalisation():
    decomposed = "\u1100\u1161\u11a8"  # 각 as conjoining jamo
    assert run(rows((decomposed, 1)), None).train[0]["text"] == "각"


def test_nothing_left_is_an_error():
    with pytest.raises(PipelineError, match="no training documents"):
        run(rows(("", 1), ("  ", 0)), None)


def test_unknown_source_is_an_error():
    with pytest.raises(PipelineError, match="unknown data source 'kaggle'"):
        DataConfig.from_params(
            {
                "source": "kaggle",
                "nsmc_dir": None,
                "file": {
                    "train": None,
                    "test": None,
                    "text_column": "t",
                    "label_column": "l",
                    "negative_label": 0,
                    "positive_label": 1,
                },
            }
        )


def _params(tmp_path, **data):
    section = {
        "source": "file",
        "nsmc_dir": None,
        "file": {
            "train": None,
            "test": None,
            "text_column": "document",
            "label_column": "label",
            "negative_label": "0",
            "positive_label": "1",
        },
    }
    section["file"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"data": section}), encoding="utf-8")
    return path


def _invoke(tmp_path, params):
    return CliRunner().invoke(
        cli,
        [
            "prepare",
            "--params",
            str(params),
            "--sample-file",
            "unused.tsv",
            "--download-dir",
            str(tmp_path / "raw"),
            "--out-dir",
            str(tmp_path / "out"),
            "--report",
            str(tmp_path / "report.json"),
        ],
    )


def test_command_writes_data_and_report(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", [(1, "좋다", 1), (2, "싫다", 0), (3, "좋다", 1)])
    test = write_tsv(tmp_path / "test.tsv", [(1, "그냥", 0)])
    result = _invoke(tmp_path, _params(tmp_path, train=str(train), test=str(test)))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jsonl", "train.jsonl"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["source"] == "file"
    assert report["rows_kept"] == {"train": 2, "test": 1}


def test_command_bad_label_fails_without_outputs(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", [(1, "좋다", 1), (2, "싫다", "neg")])
    result = _invoke(tmp_path, _params(tmp_path, train=str(train)))
    assert result.exit_code == 1
    assert "train.tsv, line 3: label 'neg'" in result.output
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "report.json").exists()


def test_nsmc_source_reads_a_local_copy(tmp_path):
    folder = tmp_path / "nsmc"
    write_tsv(folder / "ratings_train.txt", [(1, "좋다", 1), (2, "싫다", 0)])
    write_tsv(folder / "ratings_test.txt", [(3, "최고", 1)])
    params = tmp_path / "params.yaml"
    params.write_text(
        json.dumps(
            {
                "data": {
                    "source": "nsmc",
                    "nsmc_dir": str(folder),
                    "file": {
                        "train": None,
                        "test": None,
                        "text_column": "t",
                        "label_column": "l",
                        "negative_label": "0",
                        "positive_label": "1",
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    result = _invoke(tmp_path, params)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8").count("\n") == 1
