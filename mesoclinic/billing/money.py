"""Money as exact decimals with a currency: rounded to the currency's minor unit (two places for
USD and EUR, none for JPY, three for KWD: Babel's CLDR data) and written the way people read it
(py-moneyed's formatting). No float ever holds an amount."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision
from moneyed import Money
from moneyed.l10n import format_money

LOCALE = "en_US"


def places(currency: str) -> int:
    return int(get_currency_precision(currency))


def rounded(amount: Decimal, currency: str) -> Decimal:
    """`amount` to the currency's minor unit, halves away from zero (as invoices round)."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-places(currency)), rounding=ROUND_HALF_UP)


def tax_of(net: Decimal, rate: Decimal, currency: str) -> Decimal:
    """The tax on a net amount at `rate` per cent, rounded to the minor unit."""
    return rounded(net * rate / Decimal(100), currency)


def words(amount: Decimal, currency: str) -> str:
    """ "$1,234.50", "¥1,234", "-€12.00": for pages, documents and messages."""
    return str(format_money(Money(rounded(amount, currency), currency), locale=LOCALE))


def percent(rate: Decimal) -> str:
    """A rate in per cent without trailing zeros or an exponent: "20", "8.875", "0"."""
    return f"{Decimal(rate).normalize():f}"
