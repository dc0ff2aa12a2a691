"""The usage event: one model call as the AI app reports it, and the rules it must
meet before anything is written (one set of rules for every recording path).

Pure: no database, no clock (`validate_event` takes `now`), no settings.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pricing_core.domain.errors import InvalidUsage

MAX_TOKENS = 100_000_000  # per call; far above any real context window
MAX_ID_LENGTH = 128
MAX_METADATA_BYTES = 8192
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+-")

# The same rules as regular expressions, for vectorized checks of a batch: a value
# that matches is valid; one that does not goes through `validate_event` itself.
ID_PATTERN = rf"[\x20-\x7e]{{1,{MAX_ID_LENGTH}}}"
NAME_PATTERN = r"[A-Za-z0-9._:/@+\-]{1,64}"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One model call as the AI app reports it.

    Tokens are non-negative integers; `cached_tokens` is the part of `input_tokens`
    served from the provider's cache. `created_at` is timezone-aware (default: now).
    """

    request_id: str
    account_id: str
    user_id: str
    operation: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    chat_id: str | None = None
    created_at: datetime | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)


def check_id(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidUsage(f"{name} must be a non-empty string, got {value!r:.80}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidUsage(f"{name} is longer than {MAX_ID_LENGTH} characters ({len(value)})")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InvalidUsage(f"{name} contains control or unprintable characters: {value!r:.80}")


def check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > 64 or set(value) - _NAME_CHARS:
        raise InvalidUsage(
            f"{name} must be 1-64 characters of letters, digits and ._:/@+-, got {value!r:.80}"
        )


def validate_event(event: UsageEvent, *, now: datetime) -> UsageEvent:
    """Check an event before anything is written.

    Returns: the event with `created_at` filled in. Raises: InvalidUsage.
    """
    for name in ("request_id", "account_id", "user_id"):
        check_id(name, getattr(event, name))
    check_id("chat_id", event.chat_id, optional=True)
    for name in ("operation", "provider", "model"):
        check_name(name, getattr(event, name))
    for name in ("input_tokens", "output_tokens", "cached_tokens"):
        value = getattr(event, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidUsage(f"{name} must be an integer, got {value!r:.80}")
        if not 0 <= value <= MAX_TOKENS:
            raise InvalidUsage(f"{name} must be between 0 and {MAX_TOKENS:,}, got {value}")
    if event.cached_tokens > event.input_tokens:
        raise InvalidUsage(
            f"cached_tokens ({event.cached_tokens}) exceed input_tokens ({event.input_tokens})"
        )
    created_at = event.created_at or now
    if not isinstance(created_at, datetime) or created_at.tzinfo is None:
        raise InvalidUsage(f"created_at must be a timezone-aware datetime, got {created_at!r}")
    if not EARLIEST <= created_at <= now + timedelta(days=1):
        raise InvalidUsage(f"created_at {created_at.isoformat()} is out of range")
    if event.metadata is not None:
        if not isinstance(event.metadata, Mapping):
            raise InvalidUsage("metadata must be a JSON object")
        try:
            encoded = to_json(dict(event.metadata))
        except (TypeError, ValueError) as exc:
            raise InvalidUsage(f"metadata is not JSON-serializable: {exc}") from None
        if len(encoded.encode()) > MAX_METADATA_BYTES:
            raise InvalidUsage(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return replace(event, created_at=created_at.astimezone(UTC))


def same_content(row: Any, event: UsageEvent, *, timestamp_given: bool) -> bool:
    stored = (
        row.user_id,
        row.chat_id,
        row.operation,
        row.provider,
        row.model,
        row.input_tokens,
        row.output_tokens,
        row.cached_tokens,
        to_json(row.metadata) if row.metadata is not None else None,
    )
    incoming = (
        event.user_id,
        event.chat_id,
        event.operation,
        event.provider,
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.cached_tokens,
        to_json(dict(event.metadata)) if event.metadata is not None else None,
    )
    return stored == incoming and (not timestamp_given or row.created_at == event.created_at)


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys) used to compare metadata for idempotency.

    Raises: ValueError for NaN or infinite numbers, TypeError for non-JSON values.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
