"""Formatting amounts of money for people. Amounts are integers in the currency's smallest unit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings


def format_money(amount_cents: int, currency: str) -> str:
    """``$20.00`` for dollars, ``20.00 EUR`` for other (two-decimal) currencies."""
    sign = "-" if amount_cents < 0 else ""
    whole, cents = divmod(abs(amount_cents), 100)
    number = f"{whole:,}.{cents:02d}"
    return f"{sign}${number}" if currency.lower() == "usd" else f"{sign}{number} {currency.upper()}"


def format_credits(credits: int) -> str:
    """A count of credits for people, with thousands separators: ``2,000``."""
    return f"{credits:,}"


def format_usd_for_people(credits: int) -> str:
    """What ``credits`` are worth, for a page: dollars to the cent (``$1,234.50``, ``$0.04``),
    with more digits only where the amount has a part below a cent (``$0.004``, ``$0.035``),
    so a price is never rounded into another one. The /v1 API's ``usd`` fields keep their
    fixed four decimals (a machine format: ``pricing.format_usd``)."""
    value = Decimal(credits) / Decimal(settings.CREDITS_PER_USD)
    sign = "-" if value < 0 else ""
    value = abs(value)
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if cents == value:
        return f"{sign}${cents:,.2f}"
    # A part below a cent: its digits (a credit is $0.001 at 1,000 credits a dollar), at most
    # six (a rate that does not divide evenly is rounded there).
    exact = value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()
    return f"{sign}${exact:,f}"
