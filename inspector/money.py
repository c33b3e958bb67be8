"""Money is integer minor units plus an ISO currency code."""
from __future__ import annotations

from decimal import Decimal

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_ZERO_DECIMAL = {"JPY", "KRW"}


def minor_per_unit(currency: str) -> int:
    return 1 if currency.upper() in _ZERO_DECIMAL else 100


def to_minor(amount: Decimal | int | float | str, currency: str = "USD") -> int:
    return int((Decimal(str(amount)) * minor_per_unit(currency)).to_integral_value())


def from_minor(minor: int, currency: str = "USD") -> Decimal:
    return Decimal(minor) / minor_per_unit(currency)


def format_money(minor: int | None, currency: str = "USD", *, cents: bool = False) -> str:
    if minor is None:
        return ""
    units = minor / minor_per_unit(currency)
    sym = _SYMBOLS.get(currency.upper())
    body = f"{abs(units):,.2f}" if cents else f"{abs(units):,.0f}"
    sign = "-" if units < 0 else ""
    return f"{sign}{sym}{body}" if sym else f"{sign}{body} {currency.upper()}"


def format_compact(minor: int, currency: str = "USD") -> str:
    units = minor / minor_per_unit(currency)
    sym = _SYMBOLS.get(currency.upper(), "")
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(units) >= limit:
            return f"{sym}{units / limit:.1f}{suffix}"
    return f"{sym}{units:,.0f}"
