"""The error hierarchy. Every error a caller should handle is a `PricingError`.

Each error names the offending value in its message. The API and the pages translate
these to HTTP statuses and `st.error` messages at the edge.
"""

from decimal import Decimal


class PricingError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidUsage(PricingError):
    """A usage event or request is malformed (bad tokens, ids, timestamps...)."""


class UnknownModel(PricingError):
    """No price is known for this provider/model: never charge it as $0."""


class UnknownOperation(PricingError):
    """An operation has neither token pricing nor a fixed price."""


class DuplicateRequest(PricingError):
    """A request id was already recorded with different content."""


class IdempotencyConflict(PricingError):
    """An idempotency key was already used for a different ledger change."""


class UnknownAccount(PricingError):
    """The account does not exist (or is not visible to the caller)."""


class InsufficientBalance(PricingError):
    """The wallet's available balance does not cover the amount.

    Attributes:
        account_id: the wallet's account.
        available: Decimal USD available (balance - held) before the attempt.
        required: Decimal USD the operation needed.
        balance: Decimal USD wallet balance (including held money), when known.
    """

    def __init__(
        self,
        account_id: str,
        available: Decimal,
        required: Decimal,
        *,
        balance: Decimal | None = None,
    ) -> None:
        super().__init__(
            f"insufficient balance on account {account_id!r}: "
            f"available {available} USD, required {required} USD"
        )
        self.account_id = account_id
        self.available = available
        self.required = required
        self.balance = balance


class PermissionDenied(PricingError):
    """The principal may not perform this action."""


class ConfigurationError(PricingError):
    """The settings are missing something or are unsafe."""
