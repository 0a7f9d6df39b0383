"""What work costs: the price rules, and the quote that fixes a request's hold and its charge.

A model's rule (``PriceRule`` and its ``PriceTier`` rows, edited in the admin) prices each
delivered image by its pixel count (the first tier whose upper bound it does not pass; the last
tier takes every larger image) and each reference image sent with an upstream call beyond the
free ones. Layers are output images like any other.

The quote is the charge: a request is priced once, when it is accepted. Its hold is the most it
can cost (every image at the highest tier its size can reach, every call's reference
surcharge); its charge is the sum over the images actually delivered, each at the tier of the
pixels it was delivered with (never above the tier it was held at), plus the surcharge of each
call that delivered. The quote, with the rule it used, is kept on the work's record
(``Quote.record``) and rebuilt from there (``Quote.of_hold``), so settling never reads a price:
a rule changed in the admin applies to requests accepted after the change.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from . import moves
from .errors import UnknownPrice
from .models import PriceRule


@dataclass(frozen=True)
class Tier:
    """Credits per image up to ``max_pixels`` (inclusive; None: no bound)."""

    name: str
    max_pixels: int | None
    credits: int

    def describe(self) -> str:
        bound = f"up to {self.max_pixels:,} px" if self.max_pixels is not None else "any size"
        return f"{self.name}, {bound}" if self.name else bound


@dataclass(frozen=True)
class Rule:
    """One model's prices, as read from the admin's rule (or kept on a work's record)."""

    model: str
    tiers: tuple[Tier, ...]
    reference_credits: int = 0
    free_references: int = 0
    # Which edit of the rule this is (its model and when it was saved), for the ledger.
    version: str = ""

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError(f"the price rule of {self.model} has no tiers")

    def tier(self, pixels: int) -> Tier:
        """The tier an image of ``pixels`` (width x height) is priced at: the first whose bound
        it does not pass; the last tier prices every larger image whatever its bound says."""
        for tier in self.tiers[:-1]:
            if tier.max_pixels is not None and pixels <= tier.max_pixels:
                return tier
        return self.tiers[-1]

    def references_credits(self, references: int) -> int:
        """What one upstream call sent ``references`` reference images pays for them."""
        return max(0, references - self.free_references) * self.reference_credits

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "tiers": [[t.name, t.max_pixels, t.credits] for t in self.tiers],
            "reference_credits": self.reference_credits,
            "free_references": self.free_references,
        }

    @classmethod
    def of_dict(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            model=str(data["model"]),
            tiers=tuple(
                Tier(str(name), None if bound is None else int(bound), int(credits))
                for name, bound, credits in data["tiers"]
            ),
            reference_credits=int(data.get("reference_credits", 0)),
            free_references=int(data.get("free_references", 0)),
            version=str(data.get("version", "")),
        )

    @classmethod
    def flat(cls, credits: int, model: str = "") -> Rule:
        """One price for every image, no reference surcharge."""
        return cls(model=model, tiers=(Tier("", None, credits),))


@dataclass(frozen=True)
class Delivered:
    """One delivered image as it is priced: the upstream call that delivered it (0 to calls-1)
    and its pixel count as delivered."""

    call: int
    pixels: int


@dataclass(frozen=True)
class Quote:
    """A request's price under ``rule``: ``calls`` upstream calls, each delivering up to
    ``images_per_call`` images of at most ``max_pixels`` pixels and sent ``references``
    reference images. The hold is the most it can cost."""

    rule: Rule
    calls: int
    max_pixels: int
    references: int = 0
    images_per_call: int = 1
    # Not part of the record: derived.
    _tier: Tier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.calls < 1 or self.images_per_call < 1 or self.references < 0:
            raise ValueError(f"not a request: {self}")
        object.__setattr__(self, "_tier", self.rule.tier(self.max_pixels))

    @classmethod
    def flat(cls, per_image_credits: int, images: int) -> Quote:
        """``images`` images at one price each (one per call, no references)."""
        return cls(Rule.flat(per_image_credits), calls=images, max_pixels=0)

    @property
    def images(self) -> int:
        """The most images the request can deliver."""
        return self.calls * self.images_per_call

    @property
    def tier(self) -> Tier:
        """The tier each image is held at: the highest its size can reach."""
        return self._tier

    @property
    def per_image_credits(self) -> int:
        """What each image is held at (the most one can cost)."""
        return self._tier.credits

    @property
    def references_credits_per_call(self) -> int:
        return self.rule.references_credits(self.references)

    @property
    def held_credits(self) -> int:
        return self.calls * (
            self.images_per_call * self.per_image_credits + self.references_credits_per_call
        )

    def reference_credits(self) -> list[int]:
        """What each reference image costs over all the calls it is sent with (free ones 0);
        with ``images`` times ``per_image_credits``, they add up to the hold."""
        paid = self.rule.reference_credits * self.calls
        return [0 if i < self.rule.free_references else paid for i in range(self.references)]

    def hold(self) -> dict[str, int]:
        """The quantities of ``moves.HOLD`` for this quote."""
        return {"held_credits": self.held_credits}

    def _priced(self, delivered: Sequence[Delivered]) -> list[tuple[Tier, int]]:
        """Each delivered image's tier and price: its delivered pixels' tier, never above the
        tier it was held at (an image larger than the request could reach costs no more than
        the customer was quoted)."""
        per_call = Counter(image.call for image in delivered)
        if any(not 0 <= call < self.calls for call in per_call) or any(
            count > self.images_per_call for count in per_call.values()
        ):
            raise ValueError(f"{len(delivered)} images delivered do not fit {self}")
        priced = []
        for image in delivered:
            tier = self.rule.tier(image.pixels)
            if tier.credits > self.per_image_credits:
                tier = self._tier
            priced.append((tier, tier.credits))
        return priced

    def charged_credits(self, delivered: Sequence[Delivered]) -> int:
        """What ``delivered`` costs: each image at its tier, and the reference surcharge of each
        call that delivered something (a call that delivered nothing pays none)."""
        images = sum(credits for _, credits in self._priced(delivered))
        calls = len({image.call for image in delivered})
        return images + calls * self.references_credits_per_call

    def settlement(self, *, delivered: Sequence[Delivered]) -> dict[str, int]:
        """The quantities of ``moves.SETTLE`` once ``delivered`` is delivered: the hold
        released, and what was delivered charged."""
        return {
            "held_credits": self.held_credits,
            "charged_credits": self.charged_credits(delivered),
        }

    def charged_as(self, delivered: Sequence[Delivered]) -> str:
        """How the charge of ``delivered`` was priced, for its ledger line: the images per tier,
        the reference surcharges, and the rule."""
        if not delivered:
            return ""
        tiers = Counter(tier for tier, _ in self._priced(delivered))
        parts = [
            f"{count} x {tier.credits} ({tier.describe()})"
            for tier, count in sorted(tiers.items(), key=lambda item: item[0].credits)
        ]
        calls = len({image.call for image in delivered})
        paid = max(0, self.references - self.rule.free_references)
        if paid and self.rule.reference_credits:
            parts.append(f"{calls * paid} references x {self.rule.reference_credits}")
        rule = f" by rule {self.rule.version}" if self.rule.version else ""
        return f"; priced {' + '.join(parts)}{rule}"

    def record(self) -> dict[str, Any]:
        """The quote as the work's record keeps it (JSON), for ``of_hold``."""
        return {
            "rule": self.rule.as_dict(),
            "calls": self.calls,
            "max_pixels": self.max_pixels,
            "references": self.references,
            "images_per_call": self.images_per_call,
        }

    @classmethod
    def of_hold(
        cls,
        *,
        record: Mapping[str, Any] | None,
        held_credits: int,
        per_image_credits: int = 0,
        images: int = 0,
    ) -> Quote:
        """The quote a hold of ``held_credits`` was made with, from the work's ``record``. A
        record written before price rules (empty) was a flat ``per_image_credits`` for each of
        ``images`` images."""
        if record:
            quote = cls(
                Rule.of_dict(record["rule"]),
                calls=int(record["calls"]),
                max_pixels=int(record["max_pixels"]),
                references=int(record.get("references", 0)),
                images_per_call=int(record.get("images_per_call", 1)),
            )
        else:
            quote = cls.flat(per_image_credits, images)
        if quote.held_credits != held_credits:
            raise ValueError(f"a hold of {held_credits} credits is not {quote}")
        return quote


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


# The rules, read at most every PRICE_CACHE_SECONDS per process: every request needs one, and a
# query for it costs as much as the rest of the quote. A rule saved in the admin is read afresh
# at once by the process that saved it (``forget_rules``), and by the others within that time.
# -inf: never read (not 0.0: the monotonic clock may start near 0, as on a freshly booted machine,
# and the rules would then look fresh for up to PRICE_CACHE_SECONDS after start).
_rule_cache: tuple[float, dict[str, Rule]] = (-math.inf, {})


def forget_rules() -> None:
    global _rule_cache
    _rule_cache = (-math.inf, {})


def _load_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for rule in PriceRule.objects.prefetch_related("tiers"):
        tiers = sorted(rule.tiers.all(), key=lambda t: (t.max_pixels is None, t.max_pixels or 0))
        if not tiers:
            continue  # a rule without tiers sells nothing
        rules[rule.model] = Rule(
            model=rule.model,
            tiers=tuple(Tier(t.name, t.max_pixels, t.credits_per_image) for t in tiers),
            reference_credits=rule.reference_credits,
            free_references=rule.free_references,
            version=f"{rule.model}@{rule.updated_at:%Y-%m-%dT%H:%M:%SZ}",
        )
    return rules


def price_rules() -> dict[str, Rule]:
    """Every model's rule (a model without one, or without tiers, is not for sale)."""
    global _rule_cache
    read_at, rules = _rule_cache
    now = time.monotonic()
    if now - read_at >= settings.PRICE_CACHE_SECONDS:
        rules = _load_rules()
        _rule_cache = (now, rules)
    return rules


def price_rule(model: str) -> Rule:
    """``model``'s rule, or UnknownPrice."""
    rule = price_rules().get(model)
    if rule is None:
        raise UnknownPrice(f"No price rule for {model}")
    return rule


def quote(
    model: str, *, max_pixels: int, calls: int, references: int = 0, images_per_call: int = 1
) -> Quote:
    """The quote for ``calls`` upstream calls of ``model`` (UnknownPrice if it has no rule):
    each delivering up to ``images_per_call`` images of at most ``max_pixels`` pixels, each
    sent ``references`` reference images."""
    return Quote(price_rule(model), calls, max_pixels, references, images_per_call)


def cached_quote(
    model: str, *, max_pixels: int, calls: int, references: int = 0, images_per_call: int = 1
) -> Quote | None:
    """``quote`` from the cached rules, never a query: None when they are due for a refresh or
    ``model`` has none (for a caller on an event loop, which then asks ``quote`` on a thread)."""
    read_at, rules = _rule_cache
    rule = rules.get(model)
    if rule is None or time.monotonic() - read_at >= settings.PRICE_CACHE_SECONDS:
        return None
    return Quote(rule, calls, max_pixels, references, images_per_call)
