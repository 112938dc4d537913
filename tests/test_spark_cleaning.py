"""`prepare` on the spark engine (marker `spark`, one local[2] session for the module): the local
engine's files byte for byte and its report, on the sample, on edge cases and on the first
20,000 NSMC reviews, and the local engine's one-line error for each faulty file."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.prepare import Table, _table, run, run_spark
from pipeline.sources import NSMC_FORMAT
from tests.helpers import REPO, local_spark, nsmc_dir, write_tsv

NSMC_TRAIN_ROWS = 20_000
NSMC_TEST_ROWS = 5_000  # enough for some training reviews to be in the test file too


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    yield from local_spark(tmp_path_factory.mktemp("code"), "prepare")


def prepared_both_ways(spark, tmp_path: Path, train: Table, test: Table | None):
    """The local engine's and the spark engine's folders and reports, for the same tables."""
    local, on_spark = tmp_path / "local", tmp_path / "spark"
    local.mkdir()
    on_spark.mkdir()
    return local, run(train, test, local), on_spark, run_spark(spark, train, test, on_spark, None)


def assert_same_files(one: Path, other: Path) -> None:
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in other.iterdir())
    for name in names:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


@pytest.mark.spark
def test_the_sample_byte_for_byte(spark, tmp_path):
    sample = _table(REPO / "data/sample/reviews.tsv", NSMC_FORMAT)
    local, report, on_spark, spark_report = prepared_both_ways(spark, tmp_path, sample, None)
    assert_same_files(local, on_spark)
    assert spark_report == report
    assert report["rows_kept"]["train"] > 500


@pytest.mark.spark
def test_repeats_conflicts_test_overlap_and_a_uri(spark, tmp_path):
    train = write_tsv(
        tmp_path / "in/train.tsv",
        [
            (1, "  좋은  영화  ", 1),  # normalised to "좋은 영화"
            (2, "좋은 영화", 1),  # a repeat of line 2 once normalised
            (3, "애매", 1),
            (4, "애매", 0),  # the same text with both labels: both dropped
            (5, "", 0),  # empty
            (6, "시험에도 있음", 0),  # also in the test file
            (7, "\u1100\u1161\u11a8", 0),  # 각 as conjoining jamo: NFC makes it one syllable
            (8, '"따옴표" 그대로', 1),  # tab-separated: quotes are text
            (9, "별로", 0),
        ],
    )
    (tmp_path / "in/train.tsv").write_bytes(b"\xef\xbb\xbf" + train.read_bytes() + b"\n\n")
    test = write_tsv(
        tmp_path / "in/test.tsv", [(1, "시험에도 있음", 0), (2, " ", 1), (3, "최고", 1)]
    )
    tables = _table(train, NSMC_FORMAT), _table(test, NSMC_FORMAT)
    local, report, on_spark, spark_report = prepared_both_ways(spark, tmp_path, *tables)
    assert_same_files(local, on_spark)
    assert spark_report == report
    assert report["dropped"] == {
        "empty_train": 1,
        "empty_test": 1,
        "duplicate": 1,
        "conflicting_label": 2,
        "in_test_set": 1,
    }
    by_uri = tmp_path / "uri"
    by_uri.mkdir()
    uri_table = Table(train.resolve().as_uri(), (), NSMC_FORMAT)
    assert run_spark(spark, uri_table, tables[1], by_uri, 3) == report
    assert_same_files(local, by_uri)


@pytest.fixture(scope="module")
def nsmc_slice(tmp_path_factory) -> tuple[Path, Path]:
    """The first NSMC_TRAIN_ROWS reviews of NSMC's training file and NSMC_TEST_ROWS of its
    test file, as they are (header, tabs)."""
    folder = nsmc_dir()
    if not (folder / "ratings_train.txt").is_file():
        pytest.skip(f"NSMC corpus not found at {folder} (set NSMC_DIR)")
    out = tmp_path_factory.mktemp("nsmc")
    for name, rows in (
        ("ratings_train.txt", NSMC_TRAIN_ROWS),
        ("ratings_test.txt", NSMC_TEST_ROWS),
    ):
        with (folder / name).open("rb") as f:
            (out / name).write_bytes(b"".join(islice(f, rows + 1)))
    return out / "ratings_train.txt", out / "ratings_test.txt"


@pytest.mark.spark
def test_nsmc_reviews_byte_for_byte(spark, nsmc_slice, tmp_path):
    train, test = (_table(path, NSMC_FORMAT) for path in nsmc_slice)
    local, report, on_spark, spark_report = prepared_both_ways(spark, tmp_path, train, test)
    assert_same_files(local, on_spark)
    assert spark_report == report
    assert report["rows_read"] == {"train": NSMC_TRAIN_ROWS, "test": NSMC_TEST_ROWS}
    dropped = report["dropped"]
    assert dropped["duplicate"] and dropped["in_test_set"]


# A faulty file: the spark engine stops with the local engine's message, word for word.
FAULTS = {
    "wrong field count": b"id\tdocument\tlabel\n1\t\xec\xa2\x8b\xeb\x8b\xa4\t1\n2\t3\t4\t1\n",
    "bad label": "id\tdocument\tlabel\n1\t좋다\t1\n2\t싫다\t1\n3\t별로\tneg\n".encode(),
    "not utf-8": "id\tdocument\tlabel\n1\t좋다\t1\n2\t싫".encode() + b"\xc0\t0\n",
    "control character": "id\tdocument\tlabel\n1\t좋다\t1\n2\t그냥\x00그래\t0\n".encode(),
    "field over the csv limit": "id\tdocument\tlabel\n1\t좋다\t1\n".encode()
    + f"2\t{'가' * 131_073}\t0\n".encode(),
    "header only": b"id\tdocument\tlabel\n",
    "no line at all": b"",
    "missing column": "id\ttext\tlabel\n1\t좋다\t1\n".encode(),
    "one class": "id\tdocument\tlabel\n1\t좋다\t1\n2\t최고\t1\n".encode(),
    "nothing left": b"id\tdocument\tlabel\n1\t \t1\n2\t\t0\n",
}


def local_error(train: Table, out: Path) -> str:
    out.mkdir()
    with pytest.raises(PipelineError) as caught:
        run(train, None, out)
    return str(caught.value)


@pytest.mark.spark
@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulty_file_is_the_local_engine_s_error(spark, tmp_path, fault):
    path = tmp_path / "train.tsv"
    path.write_bytes(FAULTS[fault])
    train = _table(path, NSMC_FORMAT)
    expected = local_error(train, tmp_path / "local")
    (tmp_path / "spark").mkdir()
    with pytest.raises(PipelineError) as caught:
        run_spark(spark, train, None, tmp_path / "spark", None)
    assert str(caught.value) == expected
    assert "\n" not in expected
    assert not list((tmp_path / "spark").iterdir())


def test_what_the_spark_engine_refuses_before_it_starts(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("document,label\n좋다,1\n", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        run_spark(None, _table(csv, NSMC_FORMAT), None, tmp_path, None)
    assert str(caught.value) == (
        f"{csv}: engine spark reads tab-separated files (.tsv, .txt) only; "
        "set engine.name: local for CSV"
    )
    with pytest.raises(PipelineError, match=f"^data file not found: {tmp_path}/none.tsv$"):
        run_spark(None, _table(tmp_path / "none.tsv", NSMC_FORMAT), None, tmp_path, None)
