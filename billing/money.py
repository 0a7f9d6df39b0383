"""Formatting amounts of money for people. Amounts are integers in the currency's smallest unit."""

from __future__ import annotations


def format_money(amount_cents: int, currency: str) -> str:
    """``$20.00`` for dollars, ``20.00 EUR`` for other (two-decimal) currencies."""
    sign = "-" if amount_cents < 0 else ""
    whole, cents = divmod(abs(amount_cents), 100)
    number = f"{whole:,}.{cents:02d}"
    return f"{sign}${number}" if currency.lower() == "usd" else f"{sign}{number} {currency.upper()}"
