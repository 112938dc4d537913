"""Text normalisation shared by data preparation and the served model."""

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str | None) -> str:
    """Unicode NFC with every run of whitespace collapsed to one space and the ends trimmed."""
    if text is None:
        return ""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
