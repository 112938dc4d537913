from pipeline.report import cell, markdown_table


def test_cells_show_floats_to_four_places_and_none_as_a_dash():
    assert [cell(0.87654), cell(None), cell(3), cell("x")] == ["0.8765", "–", "3", "x"]


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, 0.5], ["x", None]]) == (
        "| a | b |\n|---|---|\n| 1 | 0.5000 |\n| x | – |\n"
    )
