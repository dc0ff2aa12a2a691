"""The usage event: one model call as the AI app reports it, and the rules it must
meet before anything is written (one set of rules for every recording path).

Pure: no database, no clock (`validate_event` takes `now`), no settings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pricing_core.domain.errors import InvalidUsage

MAX_TOKENS = 100_000_000  # per call; far above any real context window
MAX_QUANTITY = 10_000  # units of a fixed-price operation in one call (images, videos)
MAX_ID_LENGTH = 128  # request and chat ids
MAX_USER_ID_LENGTH = 64  # account and user ids (the key columns of every table)
ANONYMOUS_PREFIX = "anon:"  # user ids of anonymous sessions: "anon:<session id>"
MAX_SESSION_ID_LENGTH = MAX_USER_ID_LENGTH - len(ANONYMOUS_PREFIX)
# Metadata is one level of key-value pairs, like Stripe's: these bounds keep an event
# small and let the API's OpenAPI document state the whole rule.
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 200
MAX_METADATA_NUMBER = 10**15
# The API key a call came through, kept in the event's metadata (Explore groups by it)
API_KEY_METADATA = "api_key"
STORABLE_TEXT = r"^[^\x00]*$"  # no NUL (nor, see SURROGATES, a lone surrogate)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)  # how far after now an event may be dated (clock skew)
# The provider's processing tier of a call ("standard" unless the app says otherwise):
# batch APIs, flex (slower, cheaper) and priority (faster, dearer) are priced apart.
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+-")

# Characters no id may hold: controls (Cc), format characters such as zero-width
# spaces and bidi overrides (Cf, as of Unicode 14) and private use (Co, with the
# noncharacters at its ends). Written out, not looked up, so the API's OpenAPI patterns
# state the same rule. Lone surrogates (Cs) are refused too, by SURROGATES here and by
# pydantic before any pattern in the API (its regex engine cannot name them).
REFUSED_ID_CHARS = (
    r"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ue000-\uf8ff\ufeff\ufff9-\ufffb"
    r"\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0001\U000e0020-\U000e007f\U000f0000-\U0010ffff"
)


def id_text_pattern(also_refused: str = "") -> str:
    """The id rule as one regular expression: allowed characters only, and at least one
    that is not white space. `also_refused` adds characters (e.g. "/" in a path)."""
    refused = REFUSED_ID_CHARS + also_refused
    return rf"^[^{refused}]*[^\s{refused}][^{refused}]*$"


SURROGATES = r"\ud800-\udfff"
_ID_TEXT = re.compile(id_text_pattern(SURROGATES))

# The same rules as regular expressions, for vectorized checks of a batch: a value
# that matches is valid; one that does not goes through `validate_event` itself.
ID_PATTERN = rf"[\x20-\x7e]{{1,{MAX_ID_LENGTH}}}"
USER_ID_PATTERN = rf"[\x20-\x7e]{{1,{MAX_USER_ID_LENGTH}}}"
NAME_PATTERN = r"[A-Za-z0-9._:/@+\-]{1,64}"
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One model call as the AI app reports it.

    Tokens are non-negative integers, counted as genai-prices counts them:
    `input_tokens` is the whole prompt, `cached_tokens` (read from the provider's prompt
    cache) and `cache_write_tokens` (written to it, Anthropic's cache creation) are
    parts of it; `output_tokens` includes any reasoning tokens. `service_tier` is one
    of SERVICE_TIERS. `created_at` is timezone-aware (default: now). `quantity`
    (1..MAX_QUANTITY, default 1) is how many units a fixed-price operation produced in
    the call, e.g. 4 images: a fixed price is charged per unit; token-priced calls are
    priced by their tokens whatever the quantity.
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
    cache_write_tokens: int = 0
    service_tier: str = "standard"
    quantity: int = 1


def check_id(
    name: str, value: object, *, optional: bool = False, max_length: int = MAX_ID_LENGTH
) -> None:
    """Raises: InvalidUsage unless `value` is 1..max_length printable characters."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidUsage(f"{name} must be a non-empty string, got {value!r:.80}")
    if len(value) > max_length:
        raise InvalidUsage(f"{name} is longer than {max_length} characters ({len(value)})")
    if not _ID_TEXT.fullmatch(value):
        raise InvalidUsage(f"{name} contains control or unprintable characters: {value!r:.80}")


def check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > 64 or set(value) - _NAME_CHARS:
        raise InvalidUsage(
            f"{name} must be 1-64 characters of letters, digits and ._:/@+-, got {value!r:.80}"
        )


def check_quantity(quantity: object) -> int:
    """Returns: `quantity`. Raises: InvalidUsage unless an integer 1..MAX_QUANTITY."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidUsage(f"quantity must be an integer, got {quantity!r:.80}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidUsage(f"quantity must be between 1 and {MAX_QUANTITY:,}, got {quantity}")
    return quantity


def validate_event(event: UsageEvent, *, now: datetime) -> UsageEvent:
    """Check an event before anything is written.

    Returns: the event with `created_at` filled in. Raises: InvalidUsage.
    """
    check_id("request_id", event.request_id)
    for name in ("account_id", "user_id"):
        check_id(name, getattr(event, name), max_length=MAX_USER_ID_LENGTH)
    check_id("chat_id", event.chat_id, optional=True)
    for name in ("operation", "provider", "model"):
        check_name(name, getattr(event, name))
    for name in TOKEN_FIELDS:
        value = getattr(event, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidUsage(f"{name} must be an integer, got {value!r:.80}")
        if not 0 <= value <= MAX_TOKENS:
            raise InvalidUsage(f"{name} must be between 0 and {MAX_TOKENS:,}, got {value}")
    if event.cached_tokens + event.cache_write_tokens > event.input_tokens:
        raise InvalidUsage(
            f"cached_tokens ({event.cached_tokens}) and cache_write_tokens "
            f"({event.cache_write_tokens}) exceed input_tokens ({event.input_tokens})"
        )
    check_quantity(event.quantity)
    if event.service_tier not in SERVICE_TIERS:
        raise InvalidUsage(
            f"service_tier must be one of {', '.join(SERVICE_TIERS)}, "
            f"got {event.service_tier!r:.40}"
        )
    created_at = event.created_at or now
    if not isinstance(created_at, datetime) or created_at.tzinfo is None:
        raise InvalidUsage(f"created_at must be a timezone-aware datetime, got {created_at!r}")
    if not EARLIEST <= created_at <= now + MAX_AHEAD:
        raise InvalidUsage(f"created_at {created_at.isoformat()} is out of range")
    if event.metadata is not None:
        check_metadata(event.metadata)
    return replace(event, created_at=created_at.astimezone(UTC))


_STORABLE = re.compile(rf"^[^\x00{SURROGATES}]*$")


def check_metadata(metadata: object) -> None:
    """Raises: InvalidUsage unless `metadata` is an object of at most MAX_METADATA_KEYS
    keys (1..MAX_METADATA_KEY_LENGTH characters) whose values are strings (at most
    MAX_METADATA_VALUE_LENGTH characters), finite numbers within
    +-MAX_METADATA_NUMBER, booleans or null; no text may hold NUL or a lone surrogate."""
    if not isinstance(metadata, Mapping):
        raise InvalidUsage("metadata must be a JSON object")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidUsage(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS}")
    for key, value in metadata.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH
            or not _STORABLE.fullmatch(key)
        ):
            raise InvalidUsage(
                f"metadata key {key!r:.60} must be 1-{MAX_METADATA_KEY_LENGTH} characters "
                "without NUL or lone surrogates"
            )
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            if len(value) > MAX_METADATA_VALUE_LENGTH or not _STORABLE.fullmatch(value):
                raise InvalidUsage(
                    f"metadata[{key!r:.40}] must be at most {MAX_METADATA_VALUE_LENGTH} "
                    "characters without NUL or lone surrogates"
                )
        elif isinstance(value, int | float):
            finite = isinstance(value, int) or math.isfinite(value)  # a huge int has no float
            if not (finite and abs(value) <= MAX_METADATA_NUMBER):
                raise InvalidUsage(
                    f"metadata[{key!r:.40}] must be a finite number within "
                    f"+-{MAX_METADATA_NUMBER:,}, got {value!r:.40}"
                )
        else:
            raise InvalidUsage(
                f"metadata[{key!r:.40}] must be a string, number, boolean or null "
                f"(one level, no nesting), got {type(value).__name__}"
            )


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
        row.cache_write_tokens,
        row.service_tier,
        getattr(row, "quantity", 1),
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
        event.cache_write_tokens,
        event.service_tier,
        event.quantity,
        to_json(dict(event.metadata)) if event.metadata is not None else None,
    )
    return stored == incoming and (not timestamp_given or row.created_at == event.created_at)


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys) used to compare metadata for idempotency.

    Raises: ValueError for NaN or infinite numbers, TypeError for non-JSON values.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def api_key_of(metadata: Mapping[str, Any] | None) -> str:
    """The API key a call came through (`API_KEY_METADATA`), "" without one; a value
    that is not text is not a key (the charge function and the migration agree)."""
    value = (metadata or {}).get(API_KEY_METADATA)
    return value if isinstance(value, str) else ""


def api_key_of_json(text: str | None) -> str:
    """`api_key_of` for metadata stored as JSON text; parsed only if it names a key."""
    if not text or f'"{API_KEY_METADATA}"' not in text:
        return ""
    return api_key_of(json.loads(text))


def with_api_key(metadata: Mapping[str, Any] | None, key_id: str) -> dict[str, Any] | None:
    """`metadata` with the API key a call came through (`API_KEY_METADATA`), which
    overrides a caller's own value under that name. A caller that used every one of
    the MAX_METADATA_KEYS keys keeps them all, and the key is not recorded."""
    given = dict(metadata or {})
    if len(given) >= MAX_METADATA_KEYS and API_KEY_METADATA not in given:
        return metadata if metadata is None else given
    return given | {API_KEY_METADATA: key_id}
