"""Money on pages, one way: credits with thousands separators, dollars to the cent with more
digits only for a part below a cent. The API's ``usd`` fields keep four decimals."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from billing import services
from billing.money import format_credits, format_usd_for_people


@pytest.mark.parametrize(
    ("credits", "shown"),
    [(0, "$0.00"), (1, "$0.001"), (4, "$0.004"), (10, "$0.01"), (35, "$0.035"), (40, "$0.04"),
     (2000, "$2.00"), (1_234_567, "$1,234.567"), (20_000_000, "$20,000.00"), (-40, "-$0.04")],
)  # fmt: skip
def test_dollars_are_shown_to_the_cent_and_below_it_only_when_there_is_a_part_there(credits, shown):
    assert format_usd_for_people(credits) == shown


def test_the_usd_follows_the_rate(settings):
    settings.CREDITS_PER_USD = 500
    assert format_usd_for_people(1) == "$0.002"
    assert format_usd_for_people(1000) == "$2.00"


def test_credits_have_thousands_separators():
    assert [format_credits(n) for n in (5, 2000, 1_000_000, -1500)] == [
        "5", "2,000", "1,000,000", "-1,500",
    ]  # fmt: skip


def test_the_template_filters_say_it_the_same_way():
    rendered = Template(
        "{% load money %}{{ a|credits }}|{{ one|credits }}|{{ a|usd }}|{{ a|number }}|"
        "{{ a|signed }}|{{ minus|signed }}"
    ).render(Context({"a": 5000, "one": 1, "minus": -40}))

    assert rendered == "5,000 credits|1 credit|$5.00|5,000|+5,000|-40"


def test_the_apis_machine_format_is_unchanged():
    assert services.format_usd(40) == "0.0400"
