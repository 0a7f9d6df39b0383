"""Price rules as tests set them (billing.models.PriceRule, PriceTier)."""

from __future__ import annotations

from billing import pricing
from billing.models import PriceRule, PriceTier


def set_rule(
    model: str,
    tiers: list[tuple[str, int | None, int]],
    *,
    reference_credits: int = 0,
    free_references: int = 0,
) -> PriceRule:
    """Give ``model`` exactly these tiers ((name, max_pixels or None, credits)) and reference
    prices, as an operator would in the admin."""
    rule, _ = PriceRule.objects.update_or_create(
        model=model,
        defaults={"reference_credits": reference_credits, "free_references": free_references},
    )
    rule.tiers.all().delete()
    for name, max_pixels, credits in tiers:
        PriceTier.objects.create(
            rule=rule, name=name, max_pixels=max_pixels, credits_per_image=credits
        )
    pricing.forget_rules()
    return rule


def set_tier_price(model: str, name: str, credits: int) -> None:
    """Change one tier's price (by its name)."""
    assert PriceTier.objects.filter(rule__model=model, name=name).update(credits_per_image=credits)
    pricing.forget_rules()


def remove_rule(model: str) -> None:
    PriceRule.objects.filter(model=model).delete()
    pricing.forget_rules()
