"""Text normalisation shared by data preparation and the served model."""

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str | None) -> str:
    """Unicode NFC with every run of whitespace collapsed to one space and the ends trimmed."""
    if text is None:
        return ""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


# Characters that render as nothing besides whitespace and the format and control categories:
# Unicode's Default_Ignorable_Code_Point set where its category is not Cf (Hangul fillers,
# variation selectors, the combining grapheme joiner, Mongolian and Khmer fillers).
_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def has_visible_character(text: str) -> bool:
    """False for a text of whitespace, control and format characters (NUL, U+200B, U+FEFF) and
    other default-ignorable code points only: nothing a reader would see, so nothing to score."""
    return any(
        not char.isspace()
        and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        and not _INVISIBLE.match(char)
        for char in text
    )


LONE_SURROGATE = "text holds a lone surrogate (\\ud800-\\udfff), which is not a character"


def is_encodable(text: str) -> bool:
    """False for a text holding a lone surrogate (JSON's "\\ud800" escape): no character, no
    UTF-8, and nothing a tokenizer or pandas' string columns accept."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
