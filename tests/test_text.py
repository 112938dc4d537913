import pytest

from pipeline.text import has_visible_character, is_encodable, normalize_text


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t",
        "\u200b",
        "\ufeff",
        "\x00",
        "\u200b\ufeff \x00\u2060",
        "\u3164",
        "\u00ad",
        "\ufe0f",
    ],
)
def test_texts_with_nothing_to_see(text):
    assert not has_visible_character(text)
    assert not has_visible_character(normalize_text(text))


@pytest.mark.parametrize("text", ["a", "좋다", "😀", "\u200b좋다", "!!!", "\ue000", "ㅋ", "映"])
def test_texts_with_something_to_see(text):
    assert has_visible_character(text)


def test_lone_surrogates_are_not_encodable():
    assert is_encodable("좋다 😀")
    assert not is_encodable("좋다 \ud800")
    assert not is_encodable("\udfff")
