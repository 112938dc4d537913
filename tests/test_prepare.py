import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.download import NSMC_FILES
from pipeline.errors import PipelineError
from pipeline.io import read_jsonl
from pipeline.prepare import DataConfig, Table, load_tables, run
from pipeline.sources import NSMC_FORMAT, Row
from tests.helpers import REPO, clean_env, write_tsv


def table(*pairs, path="train.tsv"):
    return Table(
        Path(path), [Row(i + 2, text, label) for i, (text, label) in enumerate(pairs)], NSMC_FORMAT
    )


@dataclass
class Prepared:
    train: list[dict]
    test: list[dict] | None
    report: dict


def prepared_by(train: Table, test: Table | None, out_dir: Path) -> Prepared:
    """run() writes into `out_dir`; its files read back, with the report it returns."""
    report = run(train, test, out_dir)
    test_file = out_dir / "test.jsonl"
    return Prepared(
        read_jsonl(out_dir / "train.jsonl"),
        read_jsonl(test_file) if test_file.exists() else None,
        report,
    )


def test_cleans_deduplicates_and_removes_test_overlap(tmp_path):
    train = table(
        ("  좋은\t영화  ", 1),  # normalised to "좋은 영화"
        ("좋은 영화", 1),  # duplicate of the first after normalisation
        ("애매", 1),
        ("애매", 0),  # same text, both labels: both dropped
        ("", 0),
        (None, 1),  # empty
        ("시험에도 있음", 0),  # also in the test set
        ("별로", 0),
    )
    test = table(("시험에도 있음", 0), ("   ", 1), ("시험에도 있음", 0), ("최고", 1), path="t.tsv")
    prepared = prepared_by(train, test, tmp_path)
    assert prepared.train == [{"text": "좋은 영화", "label": 1}, {"text": "별로", "label": 0}]
    assert prepared.test == [  # test kept as given
        {"text": "시험에도 있음", "label": 0},
        {"text": "시험에도 있음", "label": 0},
        {"text": "최고", "label": 1},
    ]
    assert prepared.report["dropped"] == {
        "empty_train": 2,
        "empty_test": 1,
        "duplicate": 1,
        "conflicting_label": 2,
        "in_test_set": 1,
    }
    assert prepared.report["positive_share"]["train"] == 0.5


def test_nfc_normalisation(tmp_path):
    decomposed = "\u1100\u1161\u11a8"  # 각 as conjoining jamo
    prepared = prepared_by(table((decomposed, 1), ("별로", 0)), None, tmp_path)
    assert prepared.train[0]["text"] == "각"


def test_nothing_left_names_the_file_and_the_reasons(tmp_path):
    with pytest.raises(PipelineError) as caught:
        run(table(("", 1), ("  ", 0)), None, tmp_path)
    assert str(caught.value) == (
        "train.tsv: no training documents left after cleaning (2 rows read: 2 empty, "
        "0 duplicate, 0 with conflicting labels, 0 also in the test file)"
    )


def test_everything_also_in_the_test_file(tmp_path):
    with pytest.raises(PipelineError, match=r"train\.tsv: .*2 rows read: .* 2 also in the test"):
        run(
            table(("좋다", 1), ("싫다", 0)), table(("좋다", 1), ("싫다", 0), path="t.tsv"), tmp_path
        )


def test_one_class_in_training_data_is_an_error(tmp_path):
    with pytest.raises(PipelineError) as caught:
        run(table(("좋다", 1), ("최고", 1), ("별로", 0), ("별로", 1)), None, tmp_path)
    assert str(caught.value) == (
        "train.tsv: all 2 training documents left after cleaning are labelled '1' (positive); "
        "both classes are needed, '0' (negative) too"
    )


def test_one_class_in_the_test_file_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match=r"^t\.tsv: all 1 test documents .* '0' \(negative\);"):
        run(table(("좋다", 1), ("싫다", 0)), table(("별로", 0), path="t.tsv"), tmp_path)


def section(**changes):
    data = {
        "source": "file",
        "nsmc_dir": None,
        "nsmc_verify": True,
        "file": {
            "train": "train.tsv",
            "test": None,
            "text_column": "document",
            "label_column": "label",
            "negative_label": "0",
            "positive_label": "1",
        },
    }
    for key, value in changes.items():
        if key in data["file"]:
            data["file"][key] = value
        else:
            data[key] = value
    return data


def test_params_defaults_are_valid():
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    cfg = DataConfig.from_params(params["data"])
    assert (cfg.source, cfg.nsmc_verify) == ("sample", True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (section(train=None), "data.source is 'file' but data.file.train is not set"),
        (
            section(negative_label=1, positive_label=" 1"),
            "data.file.negative_label and data.file.positive_label are both '1': "
            "the two classes need different labels",
        ),
        (
            section(text_column="x", label_column="x"),
            "data.file.text_column and data.file.label_column are both 'x'",
        ),
        (
            section(test="./train.tsv"),
            "data.file.train and data.file.test are the same file",
        ),
    ],
)
def test_contradictory_settings_are_rejected(data, message):
    with pytest.raises(PipelineError) as caught:
        DataConfig.from_params(data)
    assert message in str(caught.value)


def test_label_settings_are_only_checked_for_the_file_source():
    cfg = DataConfig.from_params(section(source="sample", negative_label="x", positive_label="x"))
    assert cfg.source == "sample"


def _params(tmp_path, **changes):
    import yaml

    engine = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["engine"]
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps({"data": section(**changes), "engine": engine}), encoding="utf-8")
    return path


def _args(work: Path, params: Path) -> list[str]:
    return [
        "prepare",
        "--params",
        str(params),
        "--sample-file",
        str(REPO / "data/sample/reviews.tsv"),
        "--download-dir",
        str(work / "raw"),
        "--out-dir",
        str(work / "out"),
        "--report",
        str(work / "report.json"),
    ]


def _invoke(tmp_path, params):
    return CliRunner().invoke(cli, _args(tmp_path, params))


def test_command_writes_data_and_report(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", [(1, "좋다", 1), (2, "싫다", 0), (3, "좋다", 1)])
    test = write_tsv(tmp_path / "test.tsv", [(1, "그냥", 0), (2, "최고", 1)])
    result = _invoke(tmp_path, _params(tmp_path, train=str(train), test=str(test)))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jsonl", "train.jsonl"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["source"] == "file"
    assert "verified" not in report
    assert report["rows_kept"] == {"train": 2, "test": 2}


def test_sample_report_has_no_verified_key(tmp_path):
    result = _invoke(tmp_path, _params(tmp_path, source="sample"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report) == ["source", "rows_read", "dropped", "rows_kept", "positive_share"]


def test_command_bad_label_fails_without_outputs(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", [(1, "좋다", 1), (2, "싫다", "neg")])
    result = _invoke(tmp_path, _params(tmp_path, train=str(train)))
    assert result.exit_code == 1
    assert "train.tsv, line 3: label 'neg'" in result.output
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "report.json").exists()


def _nsmc_copy(folder: Path) -> Path:
    write_tsv(folder / "ratings_train.txt", [(1, "좋다", 1), (2, "싫다", 0)])
    write_tsv(folder / "ratings_test.txt", [(3, "최고", 1), (4, "최악", 0)])
    return folder


def test_nsmc_equivalent_copy_unverified_with_a_warning(tmp_path):
    folder = _nsmc_copy(tmp_path / "nsmc")
    params = _params(tmp_path, source="nsmc", nsmc_dir=str(folder), nsmc_verify=False)
    result = _invoke(tmp_path, params)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: {folder} was read without checking it against the official NSMC checksums "
        "(data.nsmc_verify is false)\n"
    )
    assert (tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8").count("\n") == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report)[:2] == ["source", "verified"]
    assert report["source"] == "nsmc"
    assert report["verified"] is False


# Every fault of a data file or of the data settings, through the real CLI in a subprocess:
# one `error:` line naming the file and line (or the setting), exit 1, nothing written.
def _fault(name: str, folder: Path) -> tuple[dict, str]:
    good = [(1, "좋다", 1), (2, "싫다", 0)]
    train = folder / "train.tsv"
    if name == "field over the csv limit":
        write_tsv(train, [*good, (3, "가" * 131_073, 0)])
        return {"train": str(train)}, "train.tsv, line 4: a field is longer than 131,072"
    if name == "header only":
        write_tsv(train, [])
        return {"train": str(train)}, "train.tsv has a header line but no data rows"
    if name == "empty texts":
        write_tsv(train, [(1, "", 1), (2, " ", 0)])
        return {"train": str(train)}, "train.tsv: no training documents left after cleaning"
    if name == "unclosed quote":
        train = folder / "train.csv"
        lines = [f"리뷰 {i},{i % 2}" for i in range(1, 121)]
        lines[24] = '"닫히지 않은 따옴표,1'
        train.write_text("document,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return {"train": str(train)}, "train.csv, line 26: expected 2 fields, found 1"
    if name == "not utf-8":
        train.write_bytes("document\tlabel\n좋다\t1\n싫".encode() + b"\xc0\t0\n")
        return {"train": str(train)}, "train.tsv, line 3, column 2: not valid UTF-8"
    if name == "control character":
        write_tsv(train, [*good, (3, "그냥\x00그래", 0)])
        return {
            "train": str(train)
        }, "train.tsv, line 4: the text holds the control character U+0000"
    if name == "one class in train":
        write_tsv(train, [(1, "좋다", 1), (2, "최고", 1)])
        return {"train": str(train)}, "train.tsv: all 2 training documents left after cleaning"
    if name == "one class in test":
        write_tsv(train, good)
        write_tsv(folder / "test.tsv", [(1, "별로", 0)])
        return {"train": str(train), "test": str(folder / "test.tsv")}, "test.tsv: all 1 test"
    if name == "empty test texts":
        write_tsv(train, good)
        write_tsv(folder / "test.tsv", [(1, "", 0)])
        return {"train": str(train), "test": str(folder / "test.tsv")}, "test.tsv: no test"
    if name == "same labels":
        write_tsv(train, good)
        return (
            {"train": str(train), "negative_label": "1"},
            "data.file.negative_label and data.file.positive_label are both '1'",
        )
    assert name == "nsmc copy not the pinned files"
    nsmc = _nsmc_copy(folder / "nsmc")
    return (
        {"source": "nsmc", "nsmc_dir": str(nsmc)},
        f"ratings_train.txt is not the pinned file: expected sha256 {NSMC_FILES[0].sha256}, got ",
    )


FAULTS = [
    "field over the csv limit",
    "header only",
    "empty texts",
    "unclosed quote",
    "not utf-8",
    "control character",
    "one class in train",
    "one class in test",
    "empty test texts",
    "same labels",
    "nsmc copy not the pinned files",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_one_line_and_writes_nothing(tmp_path, fault):
    inputs, work = tmp_path / "in", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    changes, expected = _fault(fault, inputs)
    params = _params(inputs, **changes)
    (work / "report.json").write_text("earlier report\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *_args(work, params)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert expected in line
    assert [p.name for p in work.iterdir()] == ["report.json"]
    assert (work / "report.json").read_text(encoding="utf-8") == "earlier report\n"


def test_unverified_message_names_the_setting(tmp_path):
    nsmc = _nsmc_copy(tmp_path / "nsmc")
    result = _invoke(tmp_path, _params(tmp_path, source="nsmc", nsmc_dir=str(nsmc)))
    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        "for an equivalent corpus with other checksums, set data.nsmc_verify: false"
    )


def test_a_uri_is_kept_as_written_and_only_the_spark_engine_reads_it(tmp_path):
    uri = "hdfs://namenode/reviews/train.tsv"
    cfg = DataConfig.from_params(section(train=uri))
    assert cfg.train_file == uri
    result = _invoke(tmp_path, _params(tmp_path, train=uri))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {uri} is a URI, which only the spark engine reads; set engine.name: spark, "
        "or give a local path\n"
    )
    assert not (tmp_path / "out").exists()


def test_nsmc_on_shared_storage_is_read_unverified_or_not_at_all(tmp_path):
    uri = "s3a://bucket/nsmc/"
    unverified = DataConfig.from_params(section(source="nsmc", nsmc_dir=uri, nsmc_verify=False))
    train, test, verified = load_tables(unverified, tmp_path / "sample.tsv", tmp_path)
    assert (train.path, test.path, verified) == (
        "s3a://bucket/nsmc/ratings_train.txt",
        "s3a://bucket/nsmc/ratings_test.txt",
        False,
    )
    with pytest.raises(PipelineError) as caught:
        load_tables(
            DataConfig.from_params(section(source="nsmc", nsmc_dir=uri)), tmp_path, tmp_path
        )
    assert str(caught.value) == (
        f"data.nsmc_dir {uri} is a URI, whose files cannot be checked against the NSMC "
        "checksums here; set data.nsmc_verify: false"
    )
