"""What the API accepts: field types and request bodies (pydantic), with the
checks that keep money exact (decimal strings, never floats) and text storable."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Le
from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pricing_core.analytics.event_log import MAX_PAGE
from pricing_core.domain.usage_event import (
    MAX_ID_LENGTH,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_NUMBER,
    MAX_METADATA_VALUE_LENGTH,
    MAX_QUANTITY,
    MAX_SESSION_ID_LENGTH,
    MAX_TOKENS,
    MAX_USER_ID_LENGTH,
    STORABLE_TEXT,
    id_text_pattern,
)

# ---------------------------------------------------------------- field types
# Every rule the server enforces on a field is in its schema, so the OpenAPI document
# tells the whole truth (schemathesis checks that valid data is accepted).

ID_PATTERN = id_text_pattern()
PATH_ID_PATTERN = id_text_pattern("/")
NAME_PATTERN = r"^[A-Za-z0-9._:/@+-]+$"
MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
# ISO 8601 with an offset, each part within its range (a generator drawing from this
# pattern then rarely makes an impossible date; February 30 is still refused by parsing).
INSTANT_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
# Whole cents from 0.01 to MAX_MONTHLY_BUDGET (1,000,000) USD (`limits.budget_rules`).
BUDGET_PATTERN = (
    r"^0{0,6}([1-9][0-9]{0,5}(\.[0-9]{1,2})?|1000000(\.00?)?|0?\.(0[1-9]|[1-9][0-9]?))$"
)


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer` admits 5.0: take an integral float as that integer
    (strings, booleans and fractions stay errors)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Lengths are the database columns' (`domain.usage_event`): an anonymous session is
# stored as "anon:<id>", so its id is shorter than a user id.
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
UserId = Annotated[str, Field(min_length=1, max_length=MAX_USER_ID_LENGTH, pattern=ID_PATTERN)]
SessionId = Annotated[
    str, Field(min_length=1, max_length=MAX_SESSION_ID_LENGTH, pattern=ID_PATTERN)
]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
# (bounds before the validator, or the JSON schema shows them as "ge"/"le")
Tokens = Annotated[int, Ge(0), Le(MAX_TOKENS), BeforeValidator(_whole_number), Field(strict=True)]
Quantity = Annotated[
    int, Ge(1), Le(MAX_QUANTITY), BeforeValidator(_whole_number), Field(strict=True)
]
QUANTITY_FIELD = Field(
    1,
    description="units of a fixed-price operation in the call (e.g. 4 images); a fixed "
    "price is charged per unit, a token-priced call by its tokens",
)
Percent = Annotated[int, Ge(1), Le(100), BeforeValidator(_whole_number), Field(strict=True)]
Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["0.000562500"])]
HoldId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
ChatId = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=PATH_ID_PATTERN, examples=["chat-1"]),
]
IdQuery = Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
UserIdQuery = Annotated[str | None, Query(max_length=MAX_USER_ID_LENGTH, pattern=ID_PATTERN)]
NameQuery = Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Instant = Annotated[
    str | None,
    Query(
        pattern=INSTANT_PATTERN,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601 with an offset, e.g. 2025-03-01T00:00:00Z",
    ),
]

MetadataKey = Annotated[
    str, Field(min_length=1, max_length=MAX_METADATA_KEY_LENGTH, pattern=STORABLE_TEXT)
]
MetadataValue = (
    Annotated[str, Field(max_length=MAX_METADATA_VALUE_LENGTH, pattern=STORABLE_TEXT)]
    | Annotated[int, Field(ge=-MAX_METADATA_NUMBER, le=MAX_METADATA_NUMBER, strict=True)]
    | Annotated[
        float,
        Field(ge=-MAX_METADATA_NUMBER, le=MAX_METADATA_NUMBER, allow_inf_nan=False, strict=True),
    ]
    | bool
    | None
)


def _keys_by_property_names(schema: dict[str, Any]) -> None:
    """Pydantic states a key pattern as `patternProperties`, which leaves other keys
    unconstrained; say instead that every key matches it (`propertyNames`)."""
    for pattern, values in schema.pop("patternProperties", {}).items():
        schema.setdefault("propertyNames", {})["pattern"] = pattern
        schema["additionalProperties"] = values


Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=MAX_METADATA_KEYS,
        description="one level of key-value pairs (`domain.usage_event.check_metadata`)",
        json_schema_extra=_keys_by_property_names,
    ),
]


def _omit_null(schema: dict[str, Any]) -> None:
    """Drop `null` from an optional field's schema: omit the field instead (a body's
    `pairs` refuse an explicit null)."""
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    schema.pop("default", None)


def _schema_extra(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Add a body's examples and its "exactly one of each pair" rule to its schema."""
    examples: list[dict[str, Any]] = getattr(model, "examples", [])
    pairs: tuple[tuple[str, str], ...] = getattr(model, "pairs", ())
    if examples:
        schema["examples"] = examples
    if pairs:  # always under allOf: schemathesis cannot draw a top-level oneOf here
        schema["allOf"] = [{"oneOf": [{"required": [a]}, {"required": [b]}]} for a, b in pairs]


class _In(BaseModel):
    """A request body: unknown fields are refused; of each pair in `pairs` exactly one
    field is given (omit the other: it is not nullable, and null is refused)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_extra)
    pairs: ClassVar[tuple[tuple[str, str], ...]] = ()
    examples: ClassVar[list[dict[str, Any]]] = []

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_of_each(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for first, second in cls.pairs:
                given = [name for name in (first, second) if name in data]
                for name in given:
                    if data[name] is None:
                        raise ValueError(f"omit {name} instead of sending null")
                if len(given) != 1:
                    raise ValueError(f"give exactly one of {first} and {second}")
        return data


class AuthorizeIn(_In):
    pairs = (("user_id", "anonymous_session_id"), ("estimated_input_tokens", "prompt_text"))
    examples = [
        {
            "request_id": "req-0001",
            "user_id": "user-1",
            "model": "gpt-4o-mini",
            "chat_id": "chat-1",
            "estimated_input_tokens": 1200,
            "max_output_tokens": 500,
        }
    ]
    request_id: Id = Field(description="the model call's id; settling records usage under it")
    user_id: UserId | None = Field(
        None, json_schema_extra=_omit_null, description="a user of the key's account"
    )
    anonymous_session_id: SessionId | None = Field(
        None,
        json_schema_extra=_omit_null,
        description="instead of user_id: an anonymous session (recorded, never debited)",
    )
    model: Name
    provider: Name | None = Field(None, description="inferred from the model when omitted")
    operation: Name = "chat_message"
    chat_id: Id | None = None
    estimated_input_tokens: Tokens | None = Field(None, json_schema_extra=_omit_null)
    prompt_text: str | None = Field(
        None, json_schema_extra=_omit_null, max_length=400_000, description="counted by a heuristic"
    )
    max_output_tokens: Tokens


class SettleIn(_In):
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = Field(0, description="the part of input_tokens read from cache")
    metadata: Metadata | None = None


class UsageIn(_In):
    pairs = (("user_id", "anonymous_session_id"),)
    examples = [
        {
            "request_id": "req-0002",
            "user_id": "user-1",
            "model": "gpt-4o-mini",
            "chat_id": "chat-1",
            "input_tokens": 1180,
            "output_tokens": 312,
        }
    ]
    request_id: Id
    user_id: UserId | None = Field(None, json_schema_extra=_omit_null)
    anonymous_session_id: SessionId | None = Field(None, json_schema_extra=_omit_null)
    operation: Name = "chat_message"
    provider: Name | None = None
    model: Name
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = Field(0, description="the part of input_tokens read from cache")
    cache_write_tokens: Tokens = Field(
        0, description="the part of input_tokens written to the cache (Anthropic's cache creation)"
    )
    service_tier: Literal["standard", "batch", "flex", "priority"] = Field(
        "standard", description="the provider's processing tier; each is priced with its rates"
    )
    quantity: Quantity = QUANTITY_FIELD
    chat_id: Id | None = None
    created_at: str | None = Field(
        None,
        pattern=INSTANT_PATTERN,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601 with an offset, from 2000-01-01 to a day after now; default: now",
    )
    metadata: Metadata | None = None


class EstimateIn(_In):
    pairs = (("prompt_tokens", "prompt_text"),)
    model: Name
    provider: Name | None = None
    operation: Name = "chat_message"
    prompt_tokens: Tokens | None = Field(None, json_schema_extra=_omit_null)
    prompt_text: str | None = Field(None, json_schema_extra=_omit_null, max_length=400_000)
    max_output_tokens: Tokens
    quantity: Quantity = QUANTITY_FIELD


class BudgetIn(_In):
    user_id: UserId | None = Field(None, description="omit for the whole account's budget")
    monthly_limit: Annotated[str, Field(pattern=BUDGET_PATTERN)] | None = Field(
        description="USD as a decimal string, whole cents; null removes the budget"
    )
    thresholds: list[Percent] = Field(
        default_factory=lambda: [50, 80, 100], min_length=1, max_length=10
    )
    block_at_limit: bool = Field(False, strict=True)
