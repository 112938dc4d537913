import pytest

from pipeline.errors import PipelineError
from pipeline.sources import NSMC_FORMAT, TableFormat, read_table
from tests.conftest import write_tsv


def test_reads_rows_with_line_numbers(tmp_path):
    path = write_tsv(tmp_path / "r.tsv", [(1, "좋아요", 1), (2, '"따옴표" 그대로', 0)])
    rows = read_table(path, NSMC_FORMAT)
    assert [(r.line, r.text, r.label) for r in rows] == [
        (2, "좋아요", 1),
        (3, '"따옴표" 그대로', 0),
    ]


def test_csv_with_custom_columns_and_label_names(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('review,stars\n"좋다, 정말",pos\n별로,neg\n', encoding="utf-8")
    fmt = TableFormat("review", "stars", "neg", "pos")
    assert [(r.text, r.label) for r in read_table(path, fmt)] == [("좋다, 정말", 1), ("별로", 0)]


def test_bad_label_names_file_line_and_value(tmp_path):
    path = write_tsv(tmp_path / "r.tsv", [(1, "좋아요", 1), (2, "음", 5)])
    with pytest.raises(PipelineError, match=r"r\.tsv, line 3: label '5'"):
        read_table(path, NSMC_FORMAT)


def test_missing_column_lists_the_header(tmp_path):
    path = write_tsv(tmp_path / "r.tsv", [(1, "좋아요")], header=("id", "document"))
    with pytest.raises(PipelineError, match="missing column.*'label'.*'id', 'document'"):
        read_table(path, NSMC_FORMAT)


def test_empty_file(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PipelineError, match="is empty"):
        read_table(path, NSMC_FORMAT)


def test_non_utf8(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_bytes("id\tdocument\tlabel\n1\t좋아요\t1\n".encode("cp949"))
    with pytest.raises(PipelineError, match="not valid UTF-8"):
        read_table(path, NSMC_FORMAT)


def test_wrong_field_count(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("id\tdocument\tlabel\n1\t좋아요\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="line 2: expected 3 fields, found 2"):
        read_table(path, NSMC_FORMAT)


def test_missing_file(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        read_table(tmp_path / "nope.tsv", NSMC_FORMAT)
