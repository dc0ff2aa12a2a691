"""Settings, from the environment (prefix `PRICING_`) or a `.env` file.

`get_settings()` is cached; tests that change the environment call
`get_settings.cache_clear()`.
"""

from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pricing_core.domain.money import DisplayUnit, check_credit_rate
from pricing_core.domain.rollout import Rollout

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_DATA_DIR / 'pricing.db'}"


def _source_name(name: str, default: Any) -> Any:
    """A field read from `PRICING_<NAME>` or, failing that, from `<NAME>` (the name the
    source systems document; pydantic-settings takes the first alias that is set)."""
    return Field(default, validation_alias=AliasChoices(f"pricing_{name}", name))


class Settings(BaseSettings):
    """Every setting of the product. Money settings are Decimal USD."""

    model_config = SettingsConfigDict(
        env_prefix="PRICING_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "UTC"
    env: Literal["development", "production"] = "development"
    demo: Literal["auto", "on", "off"] = "auto"
    admin_emails: str = ""
    # Sign-in: when true, an email counts (invitations, PRICING_ADMIN_EMAILS) only if
    # the provider says `email_verified: true`; when false, unless it says false.
    require_verified_email: bool = False
    # API keys: failed authentications allowed per client address per window.
    api_auth_max_failures: int = 10
    api_auth_window_seconds: int = 300
    public_url: str = "http://localhost:8501"

    welcome_credit: Decimal = Decimal("10")
    default_markup: Decimal = Decimal("1.25")
    # The unit people see amounts in: "usd", or "credits" at PRICING_CREDITS_PER_USD
    # credits to 1 USD, shown with PRICING_CREDIT_DECIMALS places (display only: the
    # ledger keeps nano-USD; `domain.money.DisplayUnit`).
    unit: Literal["usd", "credits"] = "usd"
    credits_per_usd: Decimal = Decimal(10)
    credit_decimals: Annotated[int, Field(ge=0, le=9)] = 2
    low_balance_usd: Decimal = Decimal("1.00")
    critical_balance_usd: Decimal = Decimal("0.10")
    minimum_balance_usd: Decimal = Decimal("0.01")
    price_cache_ttl: int = 300
    # "fail": recording an unpriced model raises UnknownModel;
    # "queue": the event is kept as unpriced for an admin to price.
    unpriced_policy: Literal["fail", "queue"] = "fail"

    # Authorize / hold / settle, budgets and limits (issue 7). Feature flags allow a
    # gradual rollout: first record (pricing off), then show (enforcement off), then enforce.
    # The source systems' unprefixed names are accepted too (`_source_name`); the
    # PRICING_ name wins when both are set.
    enable_pricing: bool = _source_name("enable_pricing", True)  # off: never charge
    # off: show costs but never refuse a request
    enable_budget_enforcement: bool = _source_name("enable_budget_enforcement", True)
    enable_billing: bool = _source_name("enable_billing", True)  # off: hide purchases
    # USD per account without its own budget
    default_monthly_budget: Decimal | None = _source_name("default_monthly_budget", None)
    # Gradual rollout (`domain.rollout`): which accounts the two flags above reach
    # (all, none, created_after:YYYY-MM-DD, percent:N), and a grace period of N days
    # that shows enforcement's would-be refusals without refusing, counted from the
    # later of the account's creation and `enforcement_started_on`.
    enforcement_rollout: str = "all"
    billing_rollout: str = "all"
    enforcement_grace_days: Annotated[int, Field(ge=0, le=365)] = 0
    enforcement_started_on: date | None = None
    # Cost optimization under budget pressure (`metering.optimize`): "suggest" adds a
    # cheaper model and/or fewer output tokens that fit to a refusal or, past a budget
    # alert, to the hold; "enforce" holds the suggestion instead of refusing. The
    # cheaper models per operation ("*" for every operation) are JSON, in order, e.g.
    # {"chat_message": ["gpt-4o-mini"]}.
    optimization: Literal["off", "suggest", "enforce"] = "off"
    optimization_fallbacks: dict[str, list[str]] = {}
    optimization_min_output_tokens: Annotated[int, Field(ge=1, le=100_000)] = 64
    hold_timeout_seconds: int = 900  # an unsettled hold expires after this long
    free_tier_requests_per_day: int = 20  # per anonymous session id, calendar day
    budget_webhook_url: str | None = None  # alerts are POSTed here, signed, when set
    budget_webhook_secret: SecretStr | None = None

    # Admin console: adjustments of at least this many USD (either sign) need an
    # explicit confirmation; bulk-grant uploads are refused above these limits.
    admin_confirm_usd: Decimal = Decimal("100")
    high_cost_usd: Decimal = Decimal("5")  # a day's spend that makes an account high-cost
    admin_upload_max_bytes: int = 1_000_000
    admin_bulk_max_rows: int = 10_000

    # Email notifications (`notify`): the SMTP server, e.g.
    # smtp://user:pass@host:587?starttls=true, the sender, and the key that signs the
    # one-click unsubscribe links.
    smtp_url: SecretStr | None = None
    email_from: str = "billing@localhost"
    notification_secret: SecretStr | None = None
    # admins are told when the genai-prices snapshot knows no price newer than this
    catalog_max_age_days: Annotated[int, Field(ge=1, le=3650)] = 120
    # Catalog updates without a release: a genai-prices data file (a path, or an
    # http(s) URL such as genai-prices' published prices/data.json) re-read every
    # PRICING_UPDATE_INTERVAL seconds by the `catalog-update` job; loaded when it changed.
    update_source: str | None = None
    update_interval: Annotated[int, Field(ge=60, le=30 * 86_400)] = 3600

    # ClickHouse for the admin revenue analytics (`analytics.warehouse`): chdb:///dir
    # (embedded) or clickhouse://user:pass@host:8123/db; unset, they read the rollups
    # of the system of record. The `analytics-sync` job copies new events every
    # PRICING_ANALYTICS_SYNC_SECONDS.
    analytics_url: str | None = None
    analytics_sync_seconds: Annotated[int, Field(ge=5, le=86_400)] = 60

    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None

    # Plans: which operations count as "messages" (comma-separated; empty = every
    # token-priced request, never a fixed-price image or video), how many past months
    # a recommendation replays, and the Stripe Price of each plan's monthly fee (JSON
    # object, e.g. {"starter": "price_123"}).
    plan_message_operations: str = ""
    plan_history_months: int = 3
    stripe_plan_prices: dict[str, str] = {}

    @field_validator("enforcement_rollout", "billing_rollout")
    @classmethod
    def _rollout(cls, value: str) -> str:
        Rollout.parse(value)  # ValueError names the forms
        return value

    @field_validator("credits_per_usd", mode="before")
    @classmethod
    def _credit_rate(cls, value: object) -> Decimal:
        return check_credit_rate(value)  # ValueError says why

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator(
        "welcome_credit",
        "default_markup",
        "low_balance_usd",
        "critical_balance_usd",
        "minimum_balance_usd",
        "default_monthly_budget",
        "admin_confirm_usd",
        "high_cost_usd",
        mode="before",
    )
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("money settings must be given as strings or integers, not floats")
        return value

    @property
    def display_unit(self) -> DisplayUnit:
        """How amounts are shown to people (USD, or credits at the configured rate)."""
        if self.unit == "usd":
            return DisplayUnit()
        return DisplayUnit(self.credits_per_usd, self.credit_decimals)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def message_operations(self) -> frozenset[str] | None:
        """Operations that count as plan messages; None = every token-priced request."""
        names = frozenset(o.strip() for o in self.plan_message_operations.split(",") if o.strip())
        return names or None

    def demo_mode(self, *, sign_in_configured: bool) -> bool:
        """Demo mode: never in production; `auto` means on only when no sign-in is
        configured; `on`/`off` force it (outside production)."""
        if self.env == "production":
            return False
        if self.demo == "auto":
            return not sign_in_configured
        return self.demo == "on"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached)."""
    return Settings()
