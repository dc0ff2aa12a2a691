"""Schemathesis hooks for the API contract runs (`scripts/fuzz_api.py` and the
contract test): the two rules of the API that JSON Schema cannot state, each in the
field's description and enforced by `domain.usage_event.validate_event`.

- `created_at` (`POST /usage`) must lie between 2000-01-01 and a day after now, but a
  generated date-time spans years 1..9999: a well-formed one is moved into the window.
- `cached_tokens` are part of `input_tokens`, so they cannot exceed them: a generated
  pair of integers is brought in line by lowering `cached_tokens`.

Malformed values are left as they are, so negative cases stay negative.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis


def _whole(value: object) -> bool:
    """An integer as the API reads one (JSON Schema's integer admits 5.0)."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    body = case.body
    if not isinstance(body, MutableMapping):  # a dict, or the stateful phase's own mapping
        return
    if isinstance(body.get("created_at"), str):
        try:
            at = datetime.fromisoformat(body["created_at"])
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            body["created_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cached, given = body.get("cached_tokens"), body.get("input_tokens")
    if _whole(cached) and _whole(given) and 0 <= given < cached:  # type: ignore[operator]
        body["cached_tokens"] = given
