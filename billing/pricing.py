"""What work costs: the price table, and the quote that fixes a request's hold and its charge.

The quote is the charge: a request is priced once, when it is accepted, and whatever it delivers
is charged from that quote (never from a price read later). A quote is rebuilt from the figures
the work's record keeps (``Quote.of_hold``), so settling needs no price look-up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from . import moves
from .errors import UnknownPrice
from .models import Price


@dataclass(frozen=True)
class Quote:
    """A request's price: ``per_image_credits`` for each image delivered, out of ``images``
    asked for. The hold is the most it can cost."""

    per_image_credits: int
    images: int

    @classmethod
    def of_hold(cls, *, per_image_credits: int, images: int, held_credits: int) -> Quote:
        """The quote a hold of ``held_credits`` was made for (as the work's record keeps it)."""
        quote = cls(per_image_credits, images)
        if quote.held_credits != held_credits:
            raise ValueError(f"a hold of {held_credits} credits is not {quote}")
        return quote

    @property
    def held_credits(self) -> int:
        return self.per_image_credits * self.images

    def hold(self) -> dict[str, int]:
        """The quantities of ``moves.HOLD`` for this quote."""
        return {"held_credits": self.held_credits}

    def settlement(self, *, images_delivered: int) -> dict[str, int]:
        """The quantities of ``moves.SETTLE`` once ``images_delivered`` images are delivered:
        the hold released, and each delivered image charged at the quoted price."""
        if not 0 <= images_delivered <= self.images:
            raise ValueError(f"{images_delivered} images delivered of {self.images}")
        return {
            "held_credits": self.held_credits,
            "charged_credits": self.per_image_credits * images_delivered,
        }


def charged_credits(settlement: Mapping[str, int]) -> int:
    """What a settlement takes in all, every charge line together (what the customer is told
    was charged): the hold it releases less what the move gives back."""
    return settlement["held_credits"] - moves.SETTLE.delta(settlement)


def credits_to_usd(credits: int) -> Decimal:
    """The exact dollar value of a number of credits (for display; never stored)."""
    return Decimal(credits) / Decimal(settings.CREDITS_PER_USD)


def format_usd(credits: int) -> str:
    return f"{credits_to_usd(credits).quantize(Decimal('0.0001')):f}"


def credits_for_cents(amount_cents: int) -> int:
    """Credits an amount buys: whole credits, rounded down, the same integers as the ledger."""
    return amount_cents * settings.CREDITS_PER_USD // 100


# The price table, read at most every PRICE_CACHE_SECONDS per process: every request needs a
# price, and a query for it costs as much as the rest of the quote.
_price_cache: tuple[float, dict[tuple[str, str], int]] = (0.0, {})


def _lookup(prices: Mapping[tuple[str, str], int], model: str, size_tier: str) -> int | None:
    # A tier's own row, else the model's row for any size.
    return prices.get((model, size_tier), prices.get((model, "")))


def cached_price_per_image(model: str, size_tier: str) -> int | None:
    """``price_per_image`` from the cached price list, never a query: None when the list is due
    for a refresh or has no such price (for a caller on an event loop, which then asks
    ``price_per_image`` on a thread)."""
    read_at, prices = _price_cache
    if time.monotonic() - read_at >= settings.PRICE_CACHE_SECONDS:
        return None
    return _lookup(prices, model, size_tier)


def _prices() -> dict[tuple[str, str], int]:
    global _price_cache
    read_at, prices = _price_cache
    now = time.monotonic()
    if now - read_at >= settings.PRICE_CACHE_SECONDS:
        prices = {
            (model, tier): credits
            for model, tier, credits in Price.objects.values_list(
                "model", "size_tier", "credits_per_image"
            )
        }
        _price_cache = (now, prices)
    return prices


def price_per_image(model: str, size_tier: str) -> int:
    """Credits for one delivered image of ``model`` at ``size_tier``, from the price table."""
    price = _lookup(_prices(), model, size_tier)
    if price is None:
        raise UnknownPrice(f"No price for {model} ({size_tier or 'any size'})")
    return price


def quote(model: str, size_tier: str, images: int) -> Quote:
    """The quote for ``images`` images of ``model`` at ``size_tier`` (UnknownPrice if unpriced)."""
    return Quote(price_per_image(model, size_tier), images)


def cached_quote(model: str, size_tier: str, images: int) -> Quote | None:
    """``quote`` from the cached price list without a query, or None (see
    ``cached_price_per_image``)."""
    price = cached_price_per_image(model, size_tier)
    return None if price is None else Quote(price, images)


def price_list() -> list[Price]:
    return list(Price.objects.all())
