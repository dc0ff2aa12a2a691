"""Money: `Decimal` USD in Python, integer nano-USD in storage.

Rules (see DESIGN.md, "Money"):
- never a float;
- provider prices (USD per million tokens) are never rounded;
- rounding happens once, when a price becomes a ledger amount: ROUND_HALF_EVEN
  to the nano-USD;
- Stripe cents <-> nano-USD is exact.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

NANOS_PER_USD = 1_000_000_000
NANOS_PER_CENT = 10_000_000
NANO = Decimal("1e-9")
ZERO = Decimal(0)
MTOK = 1_000_000  # provider prices are quoted per million tokens


def to_usd(value: object) -> Decimal:
    """Parse a USD amount exactly.

    Accepts Decimal, int or str (never float: binary floats are not exact).
    Returns: Decimal USD. Raises: ValueError for floats, NaN, infinities and garbage.
    """
    if isinstance(value, (bool, float)):
        raise ValueError(f"money must not be a float or bool: {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"amount must be finite: {value!r}")
    return amount


def round_nano(amount: Decimal) -> Decimal:
    """Round a USD amount half-even to the nano-USD (the one rounding step)."""
    return amount.quantize(NANO, rounding=ROUND_HALF_EVEN)


def usd_to_nanos(amount: Decimal) -> int:
    """Exact USD -> integer nano-USD.

    Raises: ValueError if the amount has more precision than a nano-USD (round first).
    """
    nanos = amount.scaleb(9)
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{amount} USD is not a whole number of nano-USD; round it first")
    return int(nanos)


def nanos_to_usd(nanos: int) -> Decimal:
    """Exact integer nano-USD -> Decimal USD (normalized to at most 9 places)."""
    return (Decimal(int(nanos)).scaleb(-9)).quantize(NANO)


def cents_to_usd(cents: int) -> Decimal:
    """Exact integer cents -> Decimal USD."""
    return Decimal(int(cents)).scaleb(-2)


def usd_to_cents(amount: Decimal) -> int:
    """Exact USD -> integer cents. Raises ValueError on sub-cent amounts."""
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} USD is not a whole number of cents")
    return int(cents)


def usd_str(amount: Decimal) -> str:
    """Serialize an amount for JSON/CSV: a plain decimal string, no exponent, 9 places max."""
    return format(round_nano(amount).normalize(), "f") if amount else "0"


CENT = Decimal("0.01")
MONEY_DIGITS = 4  # significant digits an amount below a cent keeps


def format_money(amount: Decimal) -> str:
    """The one way an amount reads for people, on every page, CLI line and message:
    cents from one cent up, with thousands separators ($1,234.50, -$0.31, $0.00), and
    below a cent up to 4 significant digits ($0.003, $0.0002304), so a spend never
    reads $0.00. Rounding is half-even and for display only (the ledger keeps nano-USD).
    Rates per unit read with `format_rate`."""
    amount = round_nano(amount)
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if magnitude >= CENT or magnitude == 0:
        return f"{sign}${magnitude.quantize(CENT, ROUND_HALF_EVEN):,}"
    step = Decimal(1).scaleb(magnitude.adjusted() - MONEY_DIGITS + 1)
    # e.g. 0.0002304; 0.0099996 rounds to 0.010000, read "0.01"
    return f"{sign}${format(magnitude.quantize(step, ROUND_HALF_EVEN), 'f').rstrip('0')}"


def format_rate(rate: Decimal, unit: str) -> str:
    """A price per unit, exact and with at least 2 decimals: "$0.15/MTok",
    "$0.0125/message". A rate is never rounded (DESIGN.md, "Money")."""
    whole, _, frac = format(rate.normalize(), "f").partition(".")
    return f"${whole}.{frac.ljust(2, '0')}/{unit}"


def format_tokens(count: int) -> str:
    """Token counts with thousands separators."""
    return f"{int(count):,}"


def printf_usd_format(amounts: object) -> str:
    """A printf format ("$%.Nf") for a table column of amounts that must sort as
    numbers: 2 decimals, or, when the column has an amount below a cent, enough to
    keep `format_money`'s 4 significant digits of the smallest (at most 9, the nano-USD)."""
    smallest = min((abs(a) for a in amounts if a), default=None)  # type: ignore[attr-defined]
    if smallest is None or smallest >= CENT:
        return "$%.2f"
    return f"$%.{min(MONEY_DIGITS - 1 - Decimal(smallest).adjusted(), 9)}f"


# ---------------------------------------------------------------- the display unit


def check_credit_rate(per_usd: object) -> Decimal:
    """Credits per USD, checked: positive, and 1 credit a whole number of nano-USD
    (10 -> 1 credit = 100,000,000 nano-USD; 3 is refused), so a whole number of
    credits is always an exact ledger amount. Returns: Decimal. Raises: ValueError."""
    rate = to_usd(per_usd)
    if rate <= 0:
        raise ValueError(f"credits per USD must be positive, got {rate}")
    nanos = Decimal(NANOS_PER_USD) / rate
    if nanos != nanos.to_integral_value():
        raise ValueError(
            f"{rate} credits per USD does not divide 1 USD into a whole number of nano-USD"
            " (1 credit would be a fraction of a nano-USD); use e.g. 10, 100 or 1000"
        )
    return rate


@dataclass(frozen=True, slots=True)
class DisplayUnit:
    """The unit amounts are shown in: USD (`per_usd` None), or credits at `per_usd`
    credits to 1 USD (`check_credit_rate`). Display only: the ledger keeps nano-USD.

    Credits read with `decimals` places, rounded half-even, trailing zeros dropped:
    "20 credits", "12.5 credits"; a nonzero amount below the last place reads
    "< 0.01 credits" (for 2 places), so a spend never reads as nothing.
    """

    per_usd: Decimal | None = None
    decimals: int = 2

    @property
    def credits(self) -> bool:
        return self.per_usd is not None

    @property
    def name(self) -> str:
        """ "credits" or "USD", for column headers and API fields."""
        return "credits" if self.credits else "USD"

    def amount(self, usd: Decimal) -> Decimal:
        """Decimal USD -> the exact amount in the unit (unrounded)."""
        return usd if self.per_usd is None else usd * self.per_usd

    def plain(self, usd: Decimal) -> str:
        """The exact amount in the unit as a plain decimal string (for CSV and JSON):
        "20", "0.0031", "-12.5"; never rounded."""
        value = self.amount(usd)
        return format(value.normalize(), "f") if value else "0"

    def per_dollar(self) -> str:
        """What $1.00 buys, for a caption: "10 credits = $1.00" ("$1.00" in USD)."""
        one = Decimal(1)
        return format_money(one) if self.per_usd is None else f"{self.format(one)} = $1.00"

    def exact(self, usd: Decimal) -> str:
        """An amount as a charge's explanation states it, to the nano-USD: USD by
        `format_money` (sub-cent digits kept), or the exact credits ("0.002304 credits")."""
        if self.per_usd is None:
            return format_money(usd)
        return f"{self.plain(round_nano(usd))} credits"

    def rate(self, usd: Decimal, per: str) -> str:
        """A price per `per` (never rounded): "$0.15/MTok" or "1.5 credits/MTok"."""
        if self.per_usd is None:
            return format_rate(usd, per)
        return f"{self.plain(usd)} credits/{per}"

    def to_usd(self, amount: object) -> Decimal:
        """An amount in the unit (Decimal, int or str) -> exact Decimal USD.
        Raises: ValueError for a float, garbage, or a part of a nano-USD."""
        value = to_usd(amount)
        usd = value if self.per_usd is None else value / self.per_usd
        usd_to_nanos(usd)  # a part of a nano-USD has no ledger amount
        return usd

    def format(self, usd: Decimal) -> str:
        """An amount of Decimal USD for people, in the unit: `format_money` for USD."""
        if self.per_usd is None:
            return format_money(usd)
        value = round_nano(usd) * self.per_usd
        step = Decimal(1).scaleb(-self.decimals)
        if value and abs(value) < step:
            return f"{'-' if value < 0 else ''}< {step} credits"
        shown = value.quantize(step, ROUND_HALF_EVEN)
        whole, _, frac = f"{shown:,}".partition(".")
        frac = frac.rstrip("0")
        text = f"{whole}.{frac}" if frac else whole
        return f"{text} credit" if abs(shown) == 1 else f"{text} credits"


USD = DisplayUnit()  # amounts in USD, the default unit of every message
