"""A key's Spend page: its cap, period and allowlists set by its owner only, each bad value
refused on its field with nothing changed, and what the page saves enforced by /v1."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from keys import services as keys
from keys.models import ApiKey

ONE = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024"}  # 40 credits
SAVED = {
    "spend_cap_credits": "5000",
    "spend_cap_period": "day",
    "allowed_models": ["seedream-4-0", "seedream-3-0"],
    "allowed_networks": "203.0.113.7\n198.51.100.0/24, 2001:db8::/32",
}


def url(api_key: ApiKey) -> str:
    return f"/dashboard/keys/{api_key.pk}/spend/"


def controls_of(api_key: ApiKey) -> tuple[object, ...]:
    key = ApiKey.objects.get(pk=api_key.pk)
    return (key.spend_cap_credits, key.spend_cap_period, key.allowed_models, key.allowed_networks)


def generate(client, raw_key: str, body=ONE, **extra):
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}"},
        **extra,
    )


@pytest.fixture
def key(owner, api_key_factory) -> ApiKey:
    return api_key_factory(owner, "build server").api_key


def test_a_visitor_is_sent_to_sign_in(client, key):
    response = client.get(url(key))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_shows_the_controls_the_models_and_the_address_it_is_seen_from(client, owner, key):
    client.force_login(owner)

    response = client.get(url(key), REMOTE_ADDR="203.0.113.50")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Spend controls of “build server”" in page
    assert "No cap: this key may spend your whole balance." in page
    assert 'name="spend_cap_credits"' in page and 'name="allowed_networks"' in page
    for label in ("per day (UTC)", "per week (UTC, from Monday)", "per month (UTC)", "in total"):
        assert label in page
    assert 'value="seedream-4-0"' in page and "<code>seedream-4-0</code>" in page
    assert '<code class="your-address">203.0.113.50</code>' in page
    assert "1,000 credits are $1.00" in page
    assert 'aria-current="page">API keys</a>' in page


def test_the_owner_saves_a_cap_and_allowlists_and_the_key_list_says_so(client, owner, key):
    client.force_login(owner)

    response = client.post(url(key), SAVED, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/keys/"
    assert controls_of(key) == (
        5000,
        "day",
        ["seedream-4-0", "seedream-3-0"],
        ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"],
    )
    listing = client.get("/dashboard/keys/").content.decode()
    assert "The spend controls of “build server” are saved." in listing
    assert "is not in the key's allowed addresses" not in listing  # 203.0.113.7 is in it
    assert (
        "cap 5,000 credits per day (UTC) · seedream-4-0, seedream-3-0 only · from 3 networks"
        in listing
    )
    assert (
        f'href="/dashboard/keys/{key.pk}/spend/" aria-label="Spend controls of build server"'
        in (listing)
    )
    # The page shows what was saved.
    again = client.get(url(key)).content.decode()
    assert 'value="5000"' in again
    assert "203.0.113.7/32\n198.51.100.0/24\n2001:db8::/32</textarea>" in again
    ticked = re.findall(
        r'<input type="checkbox" name="allowed_models" value="([\w.-]+)"[^>]*checked', again
    )
    assert sorted(ticked) == ["seedream-3-0", "seedream-4-0"]


def test_a_cap_may_be_typed_with_separators_and_everything_cleared(client, owner, key):
    client.force_login(owner)
    client.post(url(key), {**SAVED, "spend_cap_credits": "12,500"})
    assert controls_of(key)[0] == 12500

    client.post(url(key), {"spend_cap_credits": "", "spend_cap_period": "total"})

    assert controls_of(key) == (None, "total", [], [])
    listing = client.get("/dashboard/keys/").content.decode()
    assert "spend-summary" not in listing


def test_saving_a_list_that_leaves_out_this_browser_warns(client, owner, key):
    client.force_login(owner)

    response = client.post(
        url(key),
        {**SAVED, "allowed_networks": "10.0.0.0/8"},
        REMOTE_ADDR="203.0.113.9",
        follow=True,
    )

    assert controls_of(key)[3] == ["10.0.0.0/8"]
    assert (
        "Your address now (203.0.113.9) is not in the key's allowed addresses: the key is "
        "refused from here." in html.unescape(response.content.decode())
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_cap_credits", "0", "A spend cap is at least 1 credit: leave it empty for no cap."),
        ("spend_cap_credits", "-5", "Enter the cap as a whole number of credits"),
        ("spend_cap_credits", "1.5", "Enter the cap as a whole number of credits"),
        ("spend_cap_credits", "lots", "Enter the cap as a whole number of credits"),
        ("spend_cap_credits", "1000000000001", "A spend cap is at most 1,000,000,000,000 credits."),
        ("spend_cap_period", "year", "Select a valid choice. year is not one of the available"),
        ("allowed_models", ["seedream-4-0", "gpt-image-1"],
         "gpt-image-1 is not one of our models."),
        ("allowed_networks", "300.1.2.3", "'300.1.2.3' is not an IP address or a CIDR network"),
        ("allowed_networks", "10.0.0.1/8",
         "'10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?"),
        ("allowed_networks", " ".join(f"10.0.{i}.0/24" for i in range(51)),
         "A key takes at most 50 networks."),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_on_its_field_and_changes_nothing(
    client, owner, key, field, value, message
):
    keys.set_spend_controls(
        key,
        cap_credits=300,
        period="week",
        allowed_models=["seedream-3-0"],
        allowed_networks=["192.0.2.0/24"],
        known_models=["seedream-3-0"],
    )
    before = controls_of(key)
    client.force_login(owner)

    response = client.post(url(key), {**SAVED, field: value})

    assert response.status_code == 200
    form = response.context["form"]
    assert list(form.errors) == [field]
    assert message in form.errors[field][0]
    page = html.unescape(response.content.decode())
    assert 'class="error" role="alert"' in page
    assert message in page
    assert controls_of(key) == before


def test_an_outsider_gets_404_for_anothers_key_like_a_missing_one(client, owner, outsider, key):
    client.force_login(outsider)

    assert client.get(url(key)).status_code == 404
    assert client.post(url(key), SAVED).status_code == 404
    assert client.get("/dashboard/keys/999999/spend/").status_code == 404
    assert controls_of(key) == (None, "month", [], [])


def test_the_form_needs_the_csrf_token(owner, key):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    assert strict.post(url(key), SAVED).status_code == 403
    assert controls_of(key) == (None, "month", [], [])
    assert 'name="csrfmiddlewaretoken"' in strict.get(url(key)).content.decode()


@pytest.mark.usefixtures("default_prices")
def test_a_cap_saved_on_the_page_is_enforced_by_the_api(client, owner, api_key_factory):
    issued = api_key_factory(owner, "capped")
    client.force_login(owner)
    saved = client.post(
        url(issued.api_key),
        {"spend_cap_credits": "70", "spend_cap_period": "day", "allowed_models": ["seedream-4-0"]},
    )
    assert saved.status_code == 302

    first = generate(client, issued.raw_key)
    refused = generate(client, issued.raw_key)
    other_model = generate(client, issued.raw_key, {**ONE, "model": "seedream-3-0"})

    assert first.status_code == 200, first.content
    assert (first["x-key-budget-limit"], first["x-key-budget-remaining"]) == ("70", "30")
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "key_budget_exceeded"
    assert f"/dashboard/keys/{issued.api_key.pk}/spend/" in error["message"]
    assert other_model.status_code == 403
    assert other_model.json()["error"]["code"] == "model_not_allowed"
    # The page shows the window: what was spent, what is left and when it starts again.
    page = client.get(url(issued.api_key)).content.decode()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d 00:00 UTC")
    assert "<dt>Spent</dt><dd>40 <span" in page and "of 70 credits ($0.07)" in page
    assert "<dt>Remaining</dt><dd>30 credits" in page
    assert tomorrow in page
    assert 'value="57"' in page  # the meter: 40 of 70


@pytest.mark.usefixtures("default_prices")
def test_an_address_list_saved_on_the_page_is_enforced_by_the_api(client, owner, api_key_factory):
    issued = api_key_factory(owner, "office only")
    client.force_login(owner)
    client.post(
        url(issued.api_key),
        {"spend_cap_period": "month", "allowed_networks": "203.0.113.0/24"},
    )

    outside = generate(client, issued.raw_key, REMOTE_ADDR="198.51.100.7")
    inside = generate(client, issued.raw_key, REMOTE_ADDR="203.0.113.20")

    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "ip_not_allowed"
    assert inside.status_code == 200, inside.content


def test_the_keys_limits_page_links_to_its_spend_page(client, owner, key):
    client.force_login(owner)

    page = client.get(f"/dashboard/keys/{key.pk}/limits").content.decode()

    assert f'href="/dashboard/keys/{key.pk}/spend/"' in page


def test_the_service_refuses_what_the_page_would_and_saves_nothing(key):
    bad = [
        {"cap_credits": 0},
        {"period": "fortnight"},
        {"allowed_models": ["not-a-model"]},
        {"allowed_networks": ["example.com"]},
        {"allowed_models": [f"m{i}" for i in range(51)]},
    ]
    for change in bad:
        values = {
            "cap_credits": 100,
            "period": "day",
            "allowed_models": [],
            "allowed_networks": [],
            **change,
        }
        with pytest.raises(keys.InvalidControl):
            keys.set_spend_controls(
                key, **values, known_models=["seedream-4-0", *[f"m{i}" for i in range(51)]]
            )
        assert controls_of(key) == (None, "month", [], [])
