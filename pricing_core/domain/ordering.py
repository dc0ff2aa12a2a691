"""Orders people expect: numbers inside names compare as numbers."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key under which "trace-user-2" < "trace-user-10" (runs of ASCII or other
    Unicode digits compare by value; the rest case-insensitively, then as written)."""
    parts = _DIGITS.split(text)
    return tuple(
        (0, int(part)) if i % 2 else (1, part.casefold()) for i, part in enumerate(parts)
    ) + ((1, text),)
