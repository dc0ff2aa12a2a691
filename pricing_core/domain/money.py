"""Money: `Decimal` USD in Python, integer nano-USD in storage.

Rules (see DESIGN.md, "Money"):
- never a float;
- provider prices (USD per million tokens) are never rounded;
- rounding happens once, when a price becomes a ledger amount: ROUND_HALF_EVEN
  to the nano-USD;
- Stripe cents <-> nano-USD is exact.
"""

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
