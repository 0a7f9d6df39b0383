"""Money on every page, one way: credits with thousands separators ("2,000 credits"), dollars to
the cent with more digits only below a cent ("$0.004"). The /v1 API's ``usd`` fields keep their
machine format; these are for people."""

from __future__ import annotations

from django import template

from billing import services as billing

register = template.Library()


@register.filter
def credits(amount: int | None) -> str:
    """``2000`` -> ``2,000 credits`` (``1 credit``)."""
    amount = int(amount or 0)
    return f"{billing.format_credits(amount)} credit{'' if abs(amount) == 1 else 's'}"


@register.filter
def number(amount: int | None) -> str:
    """A count for a table cell: ``2000`` -> ``2,000``."""
    return billing.format_credits(int(amount or 0))


@register.filter
def signed(amount: int | None) -> str:
    """A change of balance: ``+2,000``, ``-40``, ``0``."""
    amount = int(amount or 0)
    return f"+{billing.format_credits(amount)}" if amount > 0 else billing.format_credits(amount)


@register.filter
def usd(amount_credits: int | None) -> str:
    """What a number of credits is worth: ``40`` -> ``$0.04``, ``4`` -> ``$0.004``."""
    return billing.format_usd_for_people(int(amount_credits or 0))
