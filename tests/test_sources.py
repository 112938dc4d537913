import pytest

from pipeline.errors import PipelineError
from pipeline.sources import NSMC_FORMAT, TableFormat, TableRows, iter_table, read_table
from tests.helpers import write_tsv


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


@pytest.mark.parametrize(("char", "code"), [("\x00", "0000"), ("\x07", "0007"), ("\x7f", "007F")])
def test_a_control_character_in_a_text_names_file_and_line(tmp_path, char, code):
    path = write_tsv(tmp_path / "r.tsv", [(1, "좋아요", 1), (2, f"별{char}로", 0)])
    with pytest.raises(PipelineError, match=rf"r\.tsv, line 3: .*control character U\+{code}"):
        read_table(path, NSMC_FORMAT)


def test_whitespace_control_characters_are_read_and_cleaned_later(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('document,label\n"좋다\x1f정말\r\n최고",1\n', encoding="utf-8")
    assert [r.text for r in read_table(path, NSMC_FORMAT)] == ["좋다\x1f정말\r\n최고"]


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


def test_header_only_file_names_the_file(tmp_path):
    path = write_tsv(tmp_path / "r.tsv", [])
    with pytest.raises(PipelineError, match=r"r\.tsv has a header line but no data rows"):
        read_table(path, NSMC_FORMAT)


def test_non_utf8_names_line_and_column(tmp_path):
    path = tmp_path / "r.tsv"
    good = "".join(f"{i}\t좋아요 {i}\t1\n" for i in range(1000))  # past the first read buffer
    path.write_bytes(
        b"\xef\xbb\xbfid\tdocument\tlabel\n" + good.encode() + "7\t좋".encode() + b"\xff\t0\n"
    )
    with pytest.raises(PipelineError, match=r"r\.tsv, line 1002, column 4: not valid UTF-8"):
        read_table(path, NSMC_FORMAT)


def test_non_utf8_whole_file(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_bytes("id\tdocument\tlabel\n1\t좋아요\t1\n".encode("cp949"))
    with pytest.raises(PipelineError, match=r"line 2, column 3: not valid UTF-8 text \(byte 0x"):
        read_table(path, NSMC_FORMAT)


def test_quoted_line_break_reports_the_first_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('text,label\n"두 줄\n리뷰",1\n별로,0\n', encoding="utf-8")
    fmt = TableFormat("text", "label", "0", "1")
    assert [(r.line, r.text) for r in read_table(path, fmt)] == [(2, "두 줄\n리뷰"), (4, "별로")]


def test_unclosed_quote_is_reported_where_it_opens(tmp_path):
    path = tmp_path / "r.csv"
    lines = [f"{i},리뷰 {i},{i % 2}" for i in range(1, 121)]
    lines[24] = '25,"따옴표가 안 닫힘,1'  # line 26 of the file
    path.write_text("id,text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        read_table(path, TableFormat("text", "label", "0", "1"))
    assert str(caught.value) == (
        f"{path}, line 26: expected 3 fields, found 2 "
        "(the row runs on to line 121: an unclosed quote?)"
    )


def test_unclosed_quote_in_the_label_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('text,label\n좋다,"1\n' + "별로,0\n" * 30, encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        read_table(path, TableFormat("text", "label", "0", "1"))
    message = str(caught.value)
    assert message.startswith(f"{path}, line 2: label '1\\n별로,0\\n")
    assert "characters) is not '0' (negative)" in message
    assert message.endswith("(the row runs on to line 32: an unclosed quote?)")
    assert "\n" not in message


def test_field_over_the_csv_limit_names_the_line(tmp_path):
    path = write_tsv(tmp_path / "r.tsv", [(1, "좋아요", 1), (2, "가" * 131_073, 0)])
    with pytest.raises(PipelineError) as caught:
        read_table(path, NSMC_FORMAT)
    assert str(caught.value) == f"{path}, line 3: a field is longer than 131,072 characters"


def test_unclosed_quote_swallowing_more_than_the_limit(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('text,label\n좋다,1\n"열린 따옴표,0\n' + "별로,0\n" * 30_000, encoding="utf-8")
    with pytest.raises(PipelineError, match=r"r\.csv, line 3: a field is longer than 131,072 .*"):
        read_table(path, TableFormat("text", "label", "0", "1"))


def test_iter_table_yields_rows_before_a_later_fault(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(1, "좋다", 1), (2, "별로", "x")])
    rows = iter_table(path, NSMC_FORMAT)
    assert next(rows).text == "좋다"
    with pytest.raises(PipelineError, match=r"t\.tsv, line 3: label 'x'"):
        next(rows)


def test_table_rows_read_the_file_again_on_each_iteration(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [(1, "좋다", 1)])
    rows = TableRows(path, NSMC_FORMAT)
    assert [r.text for r in rows] == [r.text for r in rows] == ["좋다"]
