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


def format_usd(amount: Decimal, *, total: bool = False) -> str:
    """Format for people: totals with 2 decimals and thousands separators; small
    amounts keep their significant digits ($0.00042, not $0.00).
    """
    amount = round_nano(amount)
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if total or magnitude >= 1 or magnitude == 0:
        cents = magnitude.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        return f"{sign if cents else ''}${cents:,}"  # -0.00042 is $0.00, not -$0.00
    if magnitude >= Decimal("0.01"):
        text = format(magnitude.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN), "f")
    else:
        # keep two significant digits below a cent
        exponent = magnitude.adjusted()  # e.g. -4 for 0.00042
        text = format(magnitude.quantize(Decimal(1).scaleb(exponent - 1), ROUND_HALF_EVEN), "f")
    text = text.rstrip("0")
    if text.endswith("."):
        text += "00"
    whole, _, frac = text.partition(".")
    if len(frac) < 2:
        frac = frac.ljust(2, "0")
    return f"{sign}${whole}.{frac}"


def format_usd_exact(amount: Decimal) -> str:
    """Format with every significant digit down to the nano-USD (for explanations):
    $0.000241125, $1.50, -$3.00."""
    amount = round_nano(amount)
    sign = "-" if amount < 0 else ""
    whole, _, frac = format(abs(amount), "f").partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{sign}${int(whole):,}.{frac}"


def format_tokens(count: int) -> str:
    """Token counts with thousands separators."""
    return f"{int(count):,}"


def printf_usd_format(amounts: object) -> str:
    """A printf format ("$%.Nf") for a table column of amounts that must sort as
    numbers: N decimals, at least 2, enough to keep two significant digits of the
    smallest non-zero amount (at most 9, the nano-USD)."""
    smallest = min((abs(a) for a in amounts if a), default=None)  # type: ignore[attr-defined]
    decimals = 2 if smallest is None else min(max(2, 1 - Decimal(smallest).adjusted()), 9)
    return f"$%.{decimals}f"


def format_usd_total(amount: Decimal) -> str:
    """A total with 2 decimals ($1,234.50), except a non-zero total below one cent,
    which keeps its significant digits ($0.0026): spend must never read $0.00."""
    if amount and abs(amount) < Decimal("0.01"):
        return format_usd(amount)
    return format_usd(amount, total=True)
