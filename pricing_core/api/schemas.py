"""What the API accepts: field types and request bodies (pydantic), with the
checks that keep money exact (decimal strings, never floats) and text storable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pricing_core.analytics.event_log import MAX_PAGE
from pricing_core.domain.usage_event import MAX_TOKENS

# ---------------------------------------------------------------- field types

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters
PATH_ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
NAME_PATTERN = r"^[A-Za-z0-9._:/@+-]+$"
MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
INSTANT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["0.000562500"])]
HoldId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
ChatId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=PATH_ID_PATTERN, examples=["chat-1"])
]
IdQuery = Annotated[str | None, Query(max_length=128, pattern=ID_PATTERN)]
NameQuery = Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
Instant = Annotated[
    str | None,
    Query(
        pattern=INSTANT_PATTERN, description="ISO 8601 with an offset, e.g. 2025-03-01T00:00:00Z"
    ),
]


def _plain_text(value: Any, where: str = "metadata") -> None:
    """Refuse strings a database cannot store (NUL, lone surrogates) in JSON metadata."""
    if isinstance(value, str):
        if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise ValueError(f"{where} contains a NUL character or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            _plain_text(key, where)
            _plain_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _plain_text(item, where)


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    _plain_text(value)
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_storable)]


def _exactly_one(body: BaseModel, first: str, second: str) -> None:
    """Raises: ValueError unless exactly one of the two fields is given."""
    if (getattr(body, first) is None) == (getattr(body, second) is None):
        raise ValueError(f"give exactly one of {first} and {second}")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # subclasses' model_config adds to this


class AuthorizeIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "req-0001",
                    "user_id": "user-1",
                    "model": "gpt-4o-mini",
                    "chat_id": "chat-1",
                    "estimated_input_tokens": 1200,
                    "max_output_tokens": 500,
                }
            ]
        },
    )
    request_id: Id = Field(description="the model call's id; settling records usage under it")
    user_id: Id | None = Field(None, description="a user of the key's account")
    anonymous_session_id: Id | None = Field(
        None, description="instead of user_id: an anonymous session (recorded, never debited)"
    )
    model: Name
    provider: Name | None = Field(None, description="inferred from the model when omitted")
    operation: Name = "chat_message"
    chat_id: Id | None = None
    estimated_input_tokens: Tokens | None = None
    prompt_text: str | None = Field(None, max_length=400_000, description="counted by a heuristic")
    max_output_tokens: Tokens

    @model_validator(mode="after")
    def _one_each(self) -> AuthorizeIn:
        _exactly_one(self, "user_id", "anonymous_session_id")
        _exactly_one(self, "estimated_input_tokens", "prompt_text")
        return self


class SettleIn(_In):
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = 0
    metadata: Metadata | None = None


class UsageIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "req-0002",
                    "user_id": "user-1",
                    "model": "gpt-4o-mini",
                    "chat_id": "chat-1",
                    "input_tokens": 1180,
                    "output_tokens": 312,
                }
            ]
        },
    )
    request_id: Id
    user_id: Id | None = None
    anonymous_session_id: Id | None = None
    operation: Name = "chat_message"
    provider: Name | None = None
    model: Name
    input_tokens: Tokens
    output_tokens: Tokens
    cached_tokens: Tokens = 0
    chat_id: Id | None = None
    created_at: str | None = Field(
        None, pattern=INSTANT_PATTERN, description="ISO 8601 with an offset; default: now"
    )
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _one_user(self) -> UsageIn:
        _exactly_one(self, "user_id", "anonymous_session_id")
        return self


class EstimateIn(_In):
    model: Name
    provider: Name | None = None
    operation: Name = "chat_message"
    prompt_tokens: Tokens | None = None
    prompt_text: str | None = Field(None, max_length=400_000)
    max_output_tokens: Tokens

    @model_validator(mode="after")
    def _one_prompt(self) -> EstimateIn:
        _exactly_one(self, "prompt_tokens", "prompt_text")
        return self


class BudgetIn(_In):
    user_id: Id | None = Field(None, description="omit for the whole account's budget")
    monthly_limit: Annotated[str, Field(pattern=r"^[0-9]{1,7}(\.[0-9]{1,2})?$")] | None = Field(
        description="USD as a decimal string, whole cents; null removes the budget"
    )
    thresholds: list[Annotated[int, Field(ge=1, le=100, strict=True)]] = Field(
        default_factory=lambda: [50, 80, 100], min_length=1, max_length=10
    )
    block_at_limit: bool = Field(False, strict=True)
