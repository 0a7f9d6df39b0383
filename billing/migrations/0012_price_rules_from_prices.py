"""Price rules replace the price table: per model, credits per delivered image by pixel tier,
and credits per reference image beyond a number of free ones.

The existing prices are kept: a model's row for any size becomes its tier up to 2048x2048
(4,194,304 px) and its "4k" row the tier above (the tier the code priced images above 2048x2048
at); a model with one row for any size gets one tier. Every catalog model without a rule then
gets the defaults below: BytePlus's list prices (the reference's section 6.1) with the markup of
the 4.0 price, which lists at $0.03 and sells at 40 credits ($0.04 at 1,000 credits a dollar):
credits = ceil(list USD x 1000 x 40 / 30).
"""

import math

from django.db import migrations

# The markup of the 4.0 price: 40 credits for a $0.03 list price.
MARKUP_CREDITS_PER_LIST_USD = 40 / 0.03


def credits(list_usd):
    # Rounded up (never below the markup); the round() absorbs float noise such as 59.99999.
    return math.ceil(round(list_usd * MARKUP_CREDITS_PER_LIST_USD, 6))


FOUR_K_FROM_PIXELS = 2048 * 2048  # the old "4k" tier: above this

# model: (tiers [(name, max_pixels or None, credits)], reference credits, free references, note)
DEFAULT_RULES = {
    "seedream-4-0": (
        [("up to 2K", FOUR_K_FROM_PIXELS, 40), ("4K", None, 60)], 0, 0,
        "List $0.03 flat; 40 credits, and 60 above 2048x2048 (the 4K tier) as before.",
    ),
    "seedream-4-5": ([("any size", None, credits(0.04))], 0, 0, "List $0.04 flat."),
    "seedream-5-0-lite": ([("any size", None, credits(0.035))], 0, 0, "List $0.035 flat."),
    "seedream-5-0-pro": (
        [("up to 1.5K", 2_359_296, credits(0.045)), ("2K", None, credits(0.09))],
        credits(0.003), 1,
        "List $0.045 / $0.09 by output pixels, references $0.003 after the first. Threshold "
        "UNVERIFIED: 2,359,296 px (1536x1536, two sources) or 2,601,124 (one); the lower is used, "
        "so images between the two are priced in the high tier.",
    ),
    "seedream-5-0-flash": ([("any size", None, credits(0.018))], 0, 0, "List $0.018 flat."),
    "seedream-5-5": (
        [("up to 1.5K", 2_601_124, credits(0.020)), ("2K", None, credits(0.035))],
        credits(0.008), 0,
        "List $0.020 up to 2,601,124 px, $0.035 above; references $0.008 each (a free first "
        "one is not reported).",
    ),
    "seedream-3-0": ([("any size", None, 35)], 0, 0, "List ~$0.03 (UNVERIFIED); 35 as before."),
    "seededit-3-0": ([("any size", None, credits(0.03))], 0, 0, "List ~$0.03 (UNVERIFIED)."),
}


def seed_rules(PriceRule, PriceTier, *, only_missing=True):
    """Every default rule whose model has none yet (used by tests that flush the tables too)."""
    for model, (tiers, reference_credits, free_references, note) in DEFAULT_RULES.items():
        if only_missing and PriceRule.objects.filter(model=model).exists():
            continue
        rule = PriceRule.objects.create(
            model=model,
            reference_credits=reference_credits,
            free_references=free_references,
            note=note,
        )
        for name, max_pixels, each in tiers:
            PriceTier.objects.create(
                rule=rule, name=name, max_pixels=max_pixels, credits_per_image=each
            )


def prices_to_rules(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    PriceRule = apps.get_model("billing", "PriceRule")
    PriceTier = apps.get_model("billing", "PriceTier")
    rows = {}
    for price in Price.objects.all():
        rows.setdefault(price.model, {})[price.size_tier] = price.credits_per_image
    for model, tiers in rows.items():
        base, four_k = tiers.get(""), tiers.get("4k")
        if base is None and four_k is None:
            continue  # only tiers the code never priced by (it knew "" and "4k")
        rule = PriceRule.objects.create(model=model, note="From the price table.")
        if base is not None and four_k is not None:
            PriceTier.objects.create(
                rule=rule, name="up to 2K", max_pixels=FOUR_K_FROM_PIXELS, credits_per_image=base
            )
            PriceTier.objects.create(rule=rule, name="4K", credits_per_image=four_k)
        else:
            name = "any size" if base is not None else "4K"
            PriceTier.objects.create(rule=rule, name=name, credits_per_image=base or four_k)
    seed_rules(PriceRule, PriceTier)


def rules_to_prices(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    PriceRule = apps.get_model("billing", "PriceRule")
    for rule in PriceRule.objects.all():
        tiers = sorted(rule.tiers.all(), key=lambda t: (t.max_pixels is None, t.max_pixels or 0))
        if not tiers:
            continue

        def at(pixels):
            return next(
                (t for t in tiers if t.max_pixels is not None and pixels <= t.max_pixels),
                tiers[-1],
            ).credits_per_image

        Price.objects.create(model=rule.model, size_tier="", credits_per_image=at(1024 * 1024))
        if at(4096 * 4096) != at(1024 * 1024):
            Price.objects.create(
                model=rule.model, size_tier="4k", credits_per_image=at(4096 * 4096)
            )


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_price_rules")]

    operations = [migrations.RunPython(prices_to_rules, rules_to_prices)]
