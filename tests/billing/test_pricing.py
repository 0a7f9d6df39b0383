"""Price rules (billing.models.PriceRule, PriceTier) and the quote (billing.pricing): every
seeded rule, tier boundaries, reference images free and paid, the hold and the charge by what
was delivered, the cache, the admin's edits, and the migration from the old price table."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing import pricing
from billing.errors import UnknownPrice
from billing.models import PriceRule, PriceTier
from billing.pricing import Delivered, Quote, Rule, Tier
from generation.catalog import all_models
from tests.support.prices import set_rule

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

# The defaults (reference §6.1 list prices x 40/30, 4.0's markup, rounded up; 4.0 and 3.0 keep
# the prices they had): model -> ([(tier name, max pixels, credits)], reference credits, free).
SEEDED = {
    "seedream-4-0": ([("up to 2K", 4_194_304, 40), ("4K", None, 60)], 0, 0),
    "seedream-4-5": ([("any size", None, 54)], 0, 0),
    "seedream-5-0-lite": ([("any size", None, 47)], 0, 0),
    "seedream-5-0-pro": ([("up to 1.5K", 2_359_296, 60), ("2K", None, 120)], 4, 1),
    "seedream-5-0-flash": ([("any size", None, 24)], 0, 0),
    "seedream-5-5": ([("up to 1.5K", 2_601_124, 27), ("2K", None, 47)], 11, 0),
    "seedream-3-0": ([("any size", None, 35)], 0, 0),
    "seededit-3-0": ([("any size", None, 40)], 0, 0),
}


def test_every_catalog_model_has_its_seeded_rule():
    rules = pricing.price_rules()
    assert set(SEEDED) == {model.id for model in all_models()}
    for model, (tiers, reference_credits, free) in SEEDED.items():
        rule = rules[model]
        assert [(t.name, t.max_pixels, t.credits) for t in rule.tiers] == tiers, model
        assert (rule.reference_credits, rule.free_references) == (reference_credits, free), model
        assert rule.version.startswith(f"{model}@")


@pytest.mark.parametrize(
    ("model", "pixels", "credits"),
    [
        # 4.0: the old 4k tier starts one pixel above 2048x2048.
        ("seedream-4-0", 1024 * 1024, 40),
        ("seedream-4-0", 2048 * 2048, 40),
        ("seedream-4-0", 2048 * 2048 + 1, 60),
        ("seedream-4-0", 4096 * 4096, 60),
        # Pro: the lower of the two candidate thresholds (2,359,296), so between them is high.
        ("seedream-5-0-pro", 1024 * 1024, 60),
        ("seedream-5-0-pro", 2_359_296, 60),
        ("seedream-5-0-pro", 2_359_297, 120),
        ("seedream-5-0-pro", 2_601_124, 120),
        ("seedream-5-0-pro", 2048 * 2048, 120),
        # 5.5: 2,601,124 (1536x1536 x 1.1025) is still the low tier.
        ("seedream-5-5", 921_600, 27),
        ("seedream-5-5", 2_601_124, 27),
        ("seedream-5-5", 2_601_125, 47),
        ("seedream-5-5", 4_624_220, 47),
        # Flat models: one price at every size.
        ("seedream-4-5", 3_686_400, 54),
        ("seedream-4-5", 4096 * 4096, 54),
        ("seedream-5-0-lite", 10_404_496, 47),
        ("seedream-5-0-flash", 921_600, 24),
        ("seedream-5-0-flash", 4_624_220, 24),
        ("seedream-3-0", 512 * 512, 35),
        ("seededit-3-0", 1024 * 1024, 40),
    ],
)
def test_each_image_is_priced_by_the_tier_of_its_pixels(model, pixels, credits):
    assert pricing.price_rule(model).tier(pixels).credits == credits


def test_a_model_without_a_rule_or_without_tiers_is_not_for_sale():
    with pytest.raises(UnknownPrice, match="seedream-9-9"):
        pricing.quote("seedream-9-9", max_pixels=1, calls=1)
    PriceTier.objects.filter(rule__model="seedream-3-0").delete()
    pricing.forget_rules()
    with pytest.raises(UnknownPrice, match="seedream-3-0"):
        pricing.quote("seedream-3-0", max_pixels=1, calls=1)


# --- the quote: the hold ------------------------------------------------------------------------

PRO = Rule(
    "seedream-5-0-pro",
    (Tier("up to 1.5K", 2_359_296, 60), Tier("2K", None, 120)),
    reference_credits=4,
    free_references=1,
    version="seedream-5-0-pro@v1",
)
FIVE_FIVE = Rule(
    "seedream-5-5",
    (Tier("up to 1.5K", 2_601_124, 27), Tier("2K", None, 47)),
    reference_credits=11,
    free_references=0,
)
FLASH = Rule("seedream-5-0-flash", (Tier("any size", None, 24),))


def test_the_hold_is_every_image_at_its_highest_tier():
    assert Quote(PRO, calls=3, max_pixels=1024 * 1024).held_credits == 3 * 60
    assert Quote(PRO, calls=3, max_pixels=2048 * 2048).held_credits == 3 * 120
    assert Quote(PRO, calls=1, max_pixels=2_359_297).tier.name == "2K"


def test_the_first_reference_is_free_on_pro_and_the_others_paid_per_call():
    # Reference §6.2: Pro, 4 references, 2048x2048: $0.09 + 3 x $0.003.
    one = Quote(PRO, calls=1, max_pixels=2048 * 2048, references=4)
    assert one.held_credits == 120 + 3 * 4
    assert one.reference_credits() == [0, 4, 4, 4]
    # Fanned out into n calls, the surcharge is paid by each call.
    two = Quote(PRO, calls=2, max_pixels=2048 * 2048, references=4)
    assert two.held_credits == 2 * (120 + 3 * 4)
    assert two.reference_credits() == [0, 8, 8, 8]
    assert two.images * two.per_image_credits + sum(two.reference_credits()) == two.held_credits
    # One reference on Pro: free.
    assert Quote(PRO, calls=1, max_pixels=1, references=1).held_credits == 60


def test_every_reference_is_paid_on_5_5_and_none_on_flash():
    # Reference §6.2: 5.5, n=4, 2 refs each, 2K: 4 x ($0.035 + 2 x $0.008).
    quote = Quote(FIVE_FIVE, calls=4, max_pixels=2048 * 2048, references=2)
    assert quote.held_credits == 4 * (47 + 2 * 11)
    assert quote.reference_credits() == [44, 44]
    assert Quote(FLASH, calls=1, max_pixels=2048 * 2048, references=10).held_credits == 24
    assert Quote(FLASH, calls=1, max_pixels=1, references=10).reference_credits() == [0] * 10


def test_layers_are_held_as_output_images():
    # Reference §6.2: Pro layer mode 1.5K, up to 17 images (base + 16 layers) per call.
    layers = Quote(PRO, calls=1, max_pixels=2_359_296, references=1, images_per_call=17)
    assert layers.held_credits == 17 * 60
    base_and_eight = [Delivered(call=0, pixels=2_000_000)] * 9
    assert layers.charged_credits(base_and_eight) == 9 * 60


# --- the quote: the charge ----------------------------------------------------------------------


def test_each_delivered_image_is_charged_by_the_pixels_it_came_with():
    quote = Quote(PRO, calls=2, max_pixels=2048 * 2048)
    high, low = Delivered(call=0, pixels=2048 * 2048), Delivered(call=1, pixels=1536 * 1536)
    assert quote.settlement(delivered=[high, low]) == {
        "held_credits": 240,
        "charged_credits": 120 + 60,
    }
    assert quote.charged_credits([Delivered(call=0, pixels=2_359_296)]) == 60
    assert quote.charged_credits([Delivered(call=0, pixels=2_359_297)]) == 120


def test_an_image_larger_than_its_size_could_reach_costs_no_more_than_was_quoted():
    quote = Quote(PRO, calls=1, max_pixels=1024 * 1024)
    assert quote.charged_credits([Delivered(call=0, pixels=2048 * 2048)]) == 60


def test_a_call_that_delivered_nothing_pays_no_reference_surcharge():
    quote = Quote(FIVE_FIVE, calls=3, max_pixels=2048 * 2048, references=2)
    assert quote.held_credits == 3 * (47 + 22)
    delivered = [Delivered(call=0, pixels=2048 * 2048), Delivered(call=2, pixels=1024 * 1024)]
    assert quote.charged_credits(delivered) == (47 + 22) + (27 + 22)
    assert quote.charged_credits([]) == 0


def test_the_charge_says_which_tier_and_rule_priced_it():
    quote = Quote(PRO, calls=3, max_pixels=2048 * 2048, references=2)
    delivered = [
        Delivered(call=0, pixels=2048 * 2048),
        Delivered(call=1, pixels=2048 * 2048),
        Delivered(call=2, pixels=1024 * 1024),
    ]
    assert quote.charged_as(delivered) == (
        "; priced 1 x 60 (up to 1.5K, up to 2,359,296 px) + 2 x 120 (2K, any size)"
        " + 3 references x 4 by rule seedream-5-0-pro@v1"
    )
    assert quote.charged_as([]) == ""


def test_a_quote_is_kept_and_rebuilt_with_its_rule():
    quote = Quote(PRO, calls=2, max_pixels=2048 * 2048, references=3, images_per_call=1)
    rebuilt = Quote.of_hold(record=quote.record(), held_credits=quote.held_credits)
    assert rebuilt == quote
    assert rebuilt.rule.version == "seedream-5-0-pro@v1"


# --- the rules as read ----------------------------------------------------------------------------


def test_rules_are_cached_for_the_configured_time(settings):
    assert pricing.price_rule("seedream-4-0").tier(1).credits == 40
    settings.PRICE_CACHE_SECONDS = 3600
    PriceTier.objects.filter(rule__model="seedream-4-0", name="up to 2K").update(
        credits_per_image=45
    )
    assert pricing.price_rule("seedream-4-0").tier(1).credits == 40
    assert pricing.cached_quote("seedream-4-0", max_pixels=1, calls=1) == pricing.quote(
        "seedream-4-0", max_pixels=1, calls=1
    )
    pricing.forget_rules()  # what saving in the admin does
    assert pricing.price_rule("seedream-4-0").tier(1).credits == 45


def test_a_stale_cache_sends_the_quote_to_a_query(settings):
    settings.PRICE_CACHE_SECONDS = 0
    pricing.price_rules()
    assert pricing.cached_quote("seedream-4-0", max_pixels=1, calls=1) is None


def test_tiers_are_read_in_order_of_their_bounds_whatever_order_they_were_made_in():
    set_rule("seedream-x", [("top", None, 9), ("mid", 200, 5), ("low", 100, 3)])
    rule = pricing.price_rule("seedream-x")
    assert [t.name for t in rule.tiers] == ["low", "mid", "top"]
    assert [rule.tier(p).credits for p in (100, 101, 200, 201, 10**9)] == [3, 5, 5, 9, 9]


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, user_factory):
    client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    return client


def rule_form(rule: PriceRule, tiers: list[tuple[str, str, str]], **fields: str) -> dict:
    """The admin change form's POST for ``rule`` with ``tiers`` (name, max_pixels, credits)
    replacing its tiers (the old ones deleted)."""
    old = list(rule.tiers.all())
    data = {
        "model": rule.model,
        "reference_credits": str(rule.reference_credits),
        "free_references": str(rule.free_references),
        "note": rule.note,
        "tiers-TOTAL_FORMS": str(len(old) + len(tiers)),
        "tiers-INITIAL_FORMS": str(len(old)),
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, tier in enumerate(old):
        data.update(
            {
                f"tiers-{index}-id": str(tier.pk),
                f"tiers-{index}-rule": str(rule.pk),
                f"tiers-{index}-name": tier.name,
                f"tiers-{index}-max_pixels": ""
                if tier.max_pixels is None
                else str(tier.max_pixels),
                f"tiers-{index}-credits_per_image": str(tier.credits_per_image),
                f"tiers-{index}-DELETE": "on",
            }
        )
    for offset, (name, max_pixels, credits) in enumerate(tiers):
        index = len(old) + offset
        data.update(
            {
                f"tiers-{index}-rule": str(rule.pk),
                f"tiers-{index}-name": name,
                f"tiers-{index}-max_pixels": max_pixels,
                f"tiers-{index}-credits_per_image": credits,
            }
        )
    return data


def change_url(rule: PriceRule) -> str:
    return f"/admin/billing/pricerule/{rule.pk}/change/"


def test_an_operator_edits_a_rule_and_it_prices_at_once(operator_client, settings):
    settings.PRICE_CACHE_SECONDS = 3600  # the saving process forgets its cache itself
    rule = PriceRule.objects.get(model="seedream-5-5")
    version = pricing.price_rule("seedream-5-5").version
    response = operator_client.post(
        change_url(rule),
        rule_form(
            rule,
            [("1K", "1500000", "20"), ("1.5K", "2601124", "30"), ("2K", "", "50")],
            reference_credits="12",
            free_references="1",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    edited = pricing.price_rule("seedream-5-5")
    assert [(t.name, t.max_pixels, t.credits) for t in edited.tiers] == [
        ("1K", 1_500_000, 20),
        ("1.5K", 2_601_124, 30),
        ("2K", None, 50),
    ]
    assert (edited.reference_credits, edited.free_references) == (12, 1)
    assert edited.version != version or edited.version.endswith("Z")


@pytest.mark.parametrize(
    ("tiers", "error"),
    [
        ([("a", "100", "5"), ("b", "200", "9")], "exactly one tier"),
        ([("a", "", "5"), ("b", "", "9")], "exactly one tier"),
        ([("a", "100", "5"), ("b", "100", "7"), ("c", "", "9")], "duplicate data for max_pixels"),
        ([], "at least one tier"),
        ([("a", "", "0")], "greater than or equal to 1"),
    ],
)
def test_the_admin_refuses_tiers_that_do_not_make_a_rule(operator_client, tiers, error):
    rule = PriceRule.objects.get(model="seedream-4-0")
    before = list(PriceTier.objects.filter(rule=rule).values_list("name", "credits_per_image"))

    response = operator_client.post(change_url(rule), rule_form(rule, tiers))

    assert response.status_code == 200
    assert error in response.content.decode()
    after = list(PriceTier.objects.filter(rule=rule).values_list("name", "credits_per_image"))
    assert after == before


# --- the migration from the price table ---------------------------------------------------------


@pytest.fixture
def executor(transactional_db: None) -> Iterator[MigrationExecutor]:
    executor = MigrationExecutor(connection)
    try:
        yield executor
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_price_tables_prices_and_adds_the_new_models(executor):
    executor.migrate([("billing", "0011_price_rules")])
    old = executor.loader.project_state([("billing", "0011_price_rules")]).apps
    Price = old.get_model("billing", "Price")
    Price.objects.all().delete()
    old.get_model("billing", "PriceRule").objects.all().delete()
    Price.objects.create(model="seedream-4-0", size_tier="", credits_per_image=44)
    Price.objects.create(model="seedream-4-0", size_tier="4k", credits_per_image=66)
    Price.objects.create(model="seedream-3-0", size_tier="", credits_per_image=33)
    Price.objects.create(model="seedream-house", size_tier="", credits_per_image=50)

    executor.loader.build_graph()
    executor.migrate([("billing", "0013_delete_price")])
    new = executor.loader.project_state([("billing", "0013_delete_price")]).apps
    rules = {
        rule.model: [(t.name, t.max_pixels, t.credits_per_image) for t in rule.tiers.all()]
        for rule in new.get_model("billing", "PriceRule").objects.all()
    }

    assert rules["seedream-4-0"] == [("up to 2K", 4_194_304, 44), ("4K", None, 66)]
    assert rules["seedream-3-0"] == [("any size", None, 33)]
    assert rules["seedream-house"] == [("any size", None, 50)]
    assert rules["seedream-5-0-pro"] == SEEDED["seedream-5-0-pro"][0]
    assert set(rules) == {*SEEDED, "seedream-house"}


def test_the_default_prices_follow_the_list_prices_with_the_4_0_markup():
    seed = importlib.import_module("billing.migrations.0012_price_rules_from_prices")
    # 4.0 lists at $0.03 and sells at 40 credits; the others take the same markup, rounded up.
    assert seed.credits(0.03) == 40
    assert seed.credits(0.045) == 60
    assert seed.credits(0.09) == 120
    assert seed.credits(0.003) == 4
    assert seed.credits(0.04) == 54  # 53.33...


def test_a_process_whose_clock_starts_near_zero_reads_the_rules_at_once(settings, monkeypatch):
    """The monotonic clock may start near 0 (a freshly booted machine): rules never read, or
    forgotten, are still due then, or every model would be 'not for sale' for a while."""
    settings.PRICE_CACHE_SECONDS = 3600
    monkeypatch.setattr(pricing.time, "monotonic", lambda: 5.0)
    pricing.forget_rules()

    assert pricing.price_rule("seedream-4-0").tier(1).credits == 40
