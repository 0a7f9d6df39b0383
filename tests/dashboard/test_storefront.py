"""The storefront's shop basics: the showcase the operator chooses in the admin, what 100 and
1,000 images cost from the live prices, the terms, privacy and acceptable-use pages (the
operator's text when they write one), and the footer that links them with the contact address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from generation.models import Generation, Image, new_image_token
from tests.support.prices import remove_rule, set_rule, set_tier_price

pytestmark = pytest.mark.django_db


def stored_image(user: Any, prompt: str, *, showcase: bool = False) -> Image:
    """A delivered image's row, as settlement leaves it (its file is not read by these pages)."""
    now = timezone.now()
    generation = Generation.objects.create(account=user.personal_account, user=user,
        model="seedream-4-0", upstream_model="u", prompt=prompt, size="2048x2048",
        n=1, status="succeeded", price_per_image_credits=40, reserved_credits=40,
        charged_credits=40, images_delivered=1, created_at=now, deadline_at=now,
        finished_at=now,
    )  # fmt: skip
    token = new_image_token()
    return Image.objects.create(
        generation=generation, account=user.personal_account, token=token, index=0,
        file=f"images/{token[:2]}/{token}.jpg", width=2048, height=2048, bytes=1000,
        showcase=showcase,
    )  # fmt: skip


def home(client: Client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


# The showcase.


def test_without_showcase_images_the_section_is_not_there(client, owner):
    stored_image(owner, "a private picture")

    page = home(client)

    assert 'id="showcase"' not in page
    assert "a private picture" not in page


def test_the_images_the_operator_marked_are_shown_by_their_public_urls(client, owner, outsider):
    shown = stored_image(owner, "a lighthouse at dusk", showcase=True)
    stored_image(outsider, "someone's private picture")

    page = home(client)

    section = re.search(r'<section id="showcase".*?</section>', page, re.S)
    assert section, "no showcase"
    assert f'href="http://testserver/img/{shown.token}.jpg"' in section.group(0)
    assert f'src="/img/t/{shown.token}.webp"' in section.group(0)
    assert 'alt="a lighthouse at dusk"' in section.group(0)
    assert "<code>seedream-4-0</code>" in section.group(0)
    assert "someone&#x27;s private picture" not in page


def test_the_showcase_shows_the_newest_eight(client, owner):
    images = [stored_image(owner, f"picture {i}", showcase=True) for i in range(10)]

    page = home(client)

    shown = re.findall(r'href="http://testserver/img/([\w-]+)\.jpg"', page)
    assert shown == [image.token for image in reversed(images)][:8]


def test_the_showcase_uses_the_image_base_url_when_there_is_one(client, owner, settings):
    settings.IMAGE_BASE_URL = "https://images.example.com"
    image = stored_image(owner, "a fox", showcase=True)

    page = home(client)

    assert f'href="https://images.example.com/img/{image.token}.jpg"' in page
    assert f'src="https://images.example.com/img/t/{image.token}.webp"' in page


# What a batch costs.


def batch_row(page: str, model: str) -> list[list[str]]:
    """The words of each cell of ``model``'s row in the pricing section."""
    section = re.search(r'<section id="pricing".*?</section>', page, re.S)
    assert section, "no pricing section"
    row = re.search(
        rf"<tr>\s*<th scope=\"row\"><code>{model}</code>.*?</tr>", section.group(0), re.S
    )
    assert row, f"no row for {model}"
    return [
        re.sub(r"<[^>]+>", " ", cell).split()
        for cell in re.findall(r"<td.*?</td>", row.group(0), re.S)
    ]


def test_the_pricing_shows_100_and_1000_images_from_the_live_prices(client, db):
    set_tier_price("seedream-4-0", "up to 2K", 47)

    page = home(client)

    assert '<th scope="col" class="num">100 images</th>' in page
    assert '<th scope="col" class="num">1,000 images</th>' in page
    # 4.0's default size (2048x2048) is in its "up to 2K" tier.
    assert batch_row(page, "seedream-4-0") == [
        ["47", "credits"],
        ["$4.70", "4,700", "credits"],
        ["$47.00", "47,000", "credits"],
    ]


def test_the_pricing_follows_the_credit_rate_and_shows_sub_cent_prices_in_full(
    client, db, settings
):
    settings.CREDITS_PER_USD = 1_000_000
    set_rule("seedream-3-0", [("any size", None, 3)])

    page = home(client)

    # 300 credits are $0.0003, 3,000 credits $0.003: no price rounds to $0.00.
    assert batch_row(page, "seedream-3-0") == [
        ["3", "credits"],
        ["$0.0003", "300", "credits"],
        ["$0.003", "3,000", "credits"],
    ]


def test_a_model_off_sale_has_no_batch_price(client, db):
    remove_rule("seedream-3-0")

    page = home(client)

    section = re.search(r'<section id="pricing".*?</section>', page, re.S)
    assert section
    assert "seedream-3-0" not in section.group(0)
    assert "seedream-4-0" in section.group(0)


# The legal pages and the footer.

LEGAL = [
    ("/terms/", "Terms of service", "acceptable use policy"),
    ("/privacy/", "Privacy policy", "Stripe"),
    ("/acceptable-use/", "Acceptable use policy", "sexual content involving minors"),
]


@pytest.mark.parametrize(("path", "title", "text"), LEGAL)
def test_each_legal_page_has_placeholder_text_that_says_so(client, db, path, title, text):
    response = client.get(path)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<h1 id="legal-title">{title}</h1>' in page
    assert f"<title>{title} · Seedream API</title>" in page
    assert text in page
    assert "the operator of this site has not published its own yet" in page


@pytest.mark.parametrize("path", ["terms", "privacy", "acceptable_use"])
def test_the_operators_own_text_replaces_the_placeholder(client, db, settings, tmp_path, path):
    folder = tmp_path / "legal" / "site"
    folder.mkdir(parents=True)
    (folder / f"{path}.html").write_text(
        '{% extends "legal/_page.html" %}'
        "{% block updated %}In force since 1 January 2027.{% endblock %}"
        "{% block legal_text %}<p>Our own words, by ACME Images Ltd.</p>{% endblock %}"
    )
    templates = django_settings.TEMPLATES[0]
    settings.TEMPLATES = [{**templates, "DIRS": [tmp_path, *templates["DIRS"]]}]

    page = client.get(f"/{path.replace('_', '-')}/").content.decode()

    assert "Our own words, by ACME Images Ltd." in page
    assert "In force since 1 January 2027." in page
    assert "has not published its own yet" not in page


def footer(page: str) -> str:
    match = re.search(r'<footer class="site-footer">.*?</footer>', page, re.S)
    assert match, "no footer"
    return match.group(0)


@pytest.mark.parametrize("path", ["/", "/docs/", "/terms/", "/accounts/login/"])
def test_every_page_has_the_footer_with_the_legal_pages_and_the_contact(client, db, settings, path):
    settings.SUPPORT_EMAIL = "help@seedream.example"

    links = footer(client.get(path).content.decode())

    for href, name in [
        ("/terms/", "Terms"),
        ("/privacy/", "Privacy"),
        ("/acceptable-use/", "Acceptable use"),
        ("mailto:help@seedream.example", "Contact: help@seedream.example"),
    ]:
        assert f'<a href="{href}">{name}</a>' in links


def test_the_dashboard_has_the_footer_too(client, owner, settings):
    settings.SUPPORT_EMAIL = "help@seedream.example"
    client.force_login(owner)

    links = footer(client.get("/dashboard/usage/").content.decode())

    assert '<a href="/terms/">Terms</a>' in links
    assert "mailto:help@seedream.example" in links


def test_without_a_support_address_the_footer_offers_no_contact_link(client, db, settings):
    settings.SUPPORT_EMAIL = ""

    page = client.get("/").content.decode()

    assert "mailto:" not in footer(page)
    assert "Contact the operator of this site." in client.get("/privacy/").content.decode()


def test_the_override_folder_is_documented_where_it_is_looked_for():
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    assert "templates/legal/site/terms.html" in readme
