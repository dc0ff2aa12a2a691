"""Column types that keep both back ends exact: money as BIGINT nano-USD (`NanoUSD`),
timestamps in UTC (`UTCDateTime`), and exact decimals stored as text (`DecimalText`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
)
from sqlalchemy.types import TypeDecorator

from pricing_core.domain.money import nanos_to_usd, usd_to_nanos


class NanoUSD(TypeDecorator[Decimal]):
    """Decimal USD in Python <-> BIGINT nano-USD in the database. Never a float."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float | bool):
            raise TypeError(f"money must be Decimal, not {type(value).__name__}: {value!r}")
        return usd_to_nanos(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else nanos_to_usd(int(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both back ends (naive UTC text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"timestamps must be timezone-aware datetimes: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """Exact non-money decimals (markups, rates) stored as text."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"decimals must not be floats: {value!r}")
        return str(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)
