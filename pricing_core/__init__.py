"""pricing_core: exact prepaid billing, metering and analytics for AI applications.

The documented API for the AI app's backend, in process (the REST API under
`/api/v1` calls the same functions):

    from pricing_core import UsageEvent, open_database, record_usage

    engine = open_database()  # PRICING_DATABASE_URL, migrated on first use
    result = record_usage(engine, UsageEvent(...))  # Decimal USD amounts

Amounts are `Decimal` USD; every error a caller should handle is a `PricingError`.
The package is layered (README, "Architecture"); it never imports streamlit.
"""

from pricing_core.adapters.storage import open_database, upgrade
from pricing_core.domain.errors import (
    ConfigurationError,
    DuplicateRequest,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidUsage,
    PermissionDenied,
    PricingError,
    UnknownAccount,
    UnknownModel,
    UnknownOperation,
)
from pricing_core.domain.usage_event import UsageEvent
from pricing_core.ledger.holds import Hold, HoldNotActive, HoldNotFound, release
from pricing_core.limits.rules import LimitExceeded
from pricing_core.metering.authorize import authorize
from pricing_core.metering.batch import BatchResult, record_usage_batch
from pricing_core.metering.estimate import Estimate, estimate_cost
from pricing_core.metering.record import UsageResult, record_usage
from pricing_core.metering.settle import Settlement, settle

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "ConfigurationError",
    "DuplicateRequest",
    "Estimate",
    "Hold",
    "HoldNotActive",
    "HoldNotFound",
    "IdempotencyConflict",
    "InsufficientBalance",
    "InvalidUsage",
    "LimitExceeded",
    "PermissionDenied",
    "PricingError",
    "Settlement",
    "UnknownAccount",
    "UnknownModel",
    "UnknownOperation",
    "UsageEvent",
    "UsageResult",
    "authorize",
    "estimate_cost",
    "open_database",
    "record_usage",
    "record_usage_batch",
    "release",
    "settle",
    "upgrade",
]
