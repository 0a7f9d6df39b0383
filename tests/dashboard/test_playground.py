"""The playground pages: the form, its live price, submitting, and the generation cards."""

from __future__ import annotations

import json

import pytest

from dashboard.forms import TIMES
from generation import services
from generation.models import Generation
from tests.support.money import assert_ledger_balanced

# Every test here sees on_commit callbacks run at once (tests/dashboard/conftest.py).
pytestmark = pytest.mark.usefixtures("commits_at_once")

URL = "/dashboard/playground/"
HTMX = {"HX-Request": "true"}


def form(**overrides):
    return {"prompt": "a paper boat", "model": "seedream-4-0", "size": "2048x2048", "n": "2",
            **overrides}  # fmt: skip


@pytest.mark.parametrize(
    "url", [URL, f"{URL}quote/", f"{URL}generations/gen_x/", "/dashboard/gallery/"]
)
def test_a_visitor_is_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_offers_the_models_sizes_and_the_price_with_the_balance(signed_in):
    page = signed_in.get(URL).content.decode()

    assert '<label for="id_prompt">Prompt</label>' in page
    assert f"2048 {TIMES} 2048" in page and "Custom size" in page
    assert "40 credits</strong> ($0.04) for 1 image" in page
    assert 'Balance: <span id="balance">1,000</span>' in page
    # Seedream 4.0 takes neither a seed nor a guidance scale: they are not offered.
    assert 'name="seed"' not in page and 'name="guidance_scale"' not in page


def test_choosing_a_model_with_extras_offers_them(signed_in):
    page = signed_in.get(URL, {"model": "seedream-3-0"}, headers=HTMX).content.decode()

    assert page.startswith('<form id="playground-form"') or 'id="playground-form"' in page
    assert 'name="seed"' in page and 'name="guidance_scale"' in page
    assert f"1024 {TIMES} 1024" in page
    assert "35 credits" in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"size": "2048x2048", "n": "3"}, "120 credits</strong> ($0.12) for 3 images"),
        ({"size": "custom", "custom_size": "4096x4096", "n": "1"}, "60 credits"),
        ({"size": "custom", "custom_size": f" 1536 {TIMES} 1024 ", "n": "2"}, "80 credits"),
        ({"size": "custom", "custom_size": "100x100"}, f"100{TIMES}100 is too small"),
        ({"size": "custom", "custom_size": ""}, "Enter a size"),
    ],
)  # fmt: skip
def test_the_quote_follows_the_form_with_the_apis_prices_and_rules(signed_in, params, expected):
    page = signed_in.get(f"{URL}quote/", {"model": "seedream-4-0", **params}).content.decode()
    assert expected in page


def test_the_live_price_is_the_apis_quote(signed_in, client, owner_key):
    params = {"model": "seedream-5-0-pro", "size": "2K", "n": "2"}
    api = client.post(
        "/v1/images/quote",
        json.dumps({**params, "n": 2, "prompt": "a fox"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    ).json()

    page = signed_in.get(f"{URL}quote/", params).content.decode()

    assert api["credits"] == 240
    assert "240 credits</strong> ($0.24) for 2 images at 120 each (2K)" in page


def test_submitting_queues_a_generation_and_returns_its_live_card(signed_in, owner, sent):
    response = signed_in.post(URL, form(), headers=HTMX)

    assert response.status_code == 200
    generation = Generation.objects.get()
    assert (generation.source, generation.status, generation.n) == ("playground", "queued", 2)
    assert sent == [generation.pk]
    page = response.content.decode()
    assert f'id="gen-{generation.public_id}"' in page
    assert 'hx-trigger="every 1s"' in page
    assert "80 credits held" in page
    assert assert_ledger_balanced(owner) == 920


def test_without_javascript_submitting_redirects_back_to_the_page(signed_in, sent):
    response = signed_in.post(URL, form())

    assert response.status_code == 302
    page = signed_in.get(URL).content.decode()
    assert "a paper boat" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "This field is required."),
        ({"size": "custom", "custom_size": "9x9"}, "custom_size", f"9{TIMES}9 is too small for"),
        ({"size": "custom", "custom_size": ""}, "custom_size", "Enter a width and height"),
        ({"n": "7"}, "n", "Select a valid choice"),
        ({"model": "dall-e-3"}, "model", "Select a valid choice"),
    ],
)  # fmt: skip
def test_bad_input_is_explained_on_the_field_and_costs_nothing(
    signed_in, owner, sent, overrides, field, message
):
    response = signed_in.post(URL, form(**overrides), headers=HTMX)

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#playground-form"
    page = response.content.decode()
    assert message in page
    assert f'id="id_{field}"' in page
    assert not Generation.objects.exists()
    assert sent == []
    assert assert_ledger_balanced(owner) == 1000


def test_a_seed_out_of_range_is_refused_for_a_model_that_takes_seeds(signed_in, sent):
    response = signed_in.post(
        URL, form(model="seedream-3-0", size="1024x1024", seed="99999999999"), headers=HTMX
    )
    assert "Ensure this value is less than or equal to 2147483647" in response.content.decode()
    assert not Generation.objects.exists()


def test_not_enough_credits_is_said_plainly_and_logged_in_usage(client, user_factory, sent):
    poor = user_factory("poor@example.com", credits=50)
    client.force_login(poor)
    quote = client.get(f"{URL}quote/", {"model": "seedream-4-0", "size": "2K", "n": "2"})
    assert "not enough for this request" in quote.content.decode()

    response = client.post(URL, form(n="2"), headers=HTMX)

    page = response.content.decode()
    assert "Not enough credits: this needs 80 and your balance is 50." in page
    assert sent == []
    refused = Generation.objects.get()
    assert (refused.status, refused.http_status, refused.charged_credits) == ("failed", 402, 0)
    assert assert_ledger_balanced(poor) == 50


def test_the_card_follows_the_generation_to_the_end(signed_in, owner, sent):
    signed_in.post(URL, form(n="1"), headers=HTMX)
    generation = Generation.objects.get()
    card_url = f"{URL}generations/{generation.public_id}/"

    running = signed_in.get(card_url).content.decode()
    assert "Waiting for a worker" in running and "every 1s" in running

    services.run_queued_generation(generation.pk)
    done = signed_in.get(card_url).content.decode()

    assert "every 1s" not in done
    assert "Charged 40 credits" in done
    assert f"/img/t/{generation.images.get().token}.webp" in done
    assert '<span id="balance" hx-swap-oob="true">960</span>' in done


def test_a_new_card_deletes_nothing_out_of_band_and_shows_the_balance_with_its_hold(
    signed_in, sent
):
    """A second generation on the same page used to delete "Nothing yet" out of band again,
    which htmx reports as htmx:oobErrorNoTarget: the note now hides itself (CSS) once a card is
    before it, and a card's only out-of-band part is the balance, always on the page."""
    empty = signed_in.get(URL).content.decode()
    first = signed_in.post(URL, form(), headers=HTMX).content.decode()
    second = signed_in.post(URL, form(), headers=HTMX).content.decode()
    with_cards = signed_in.get(URL).content.decode()

    assert '<p class="empty" id="no-generations">Nothing yet.' in empty
    assert '<p class="empty" id="no-generations">Nothing yet.' in with_cards
    for card in (first, second):
        assert 'hx-swap-oob="delete"' not in card
        assert card.count("hx-swap-oob") == 1
    assert '<span id="balance" hx-swap-oob="true">920</span>' in first  # 80 held
    assert '<span id="balance" hx-swap-oob="true">840</span>' in second
    assert 'id="balance"' in with_cards  # the target of that swap is always there


def test_a_failed_card_keeps_its_explanation_after_a_reload(signed_in, sent):
    signed_in.post(URL, form(prompt="nope [sim:block-prompt]"), headers=HTMX)
    generation = Generation.objects.get()
    services.run_queued_generation(generation.pk)

    live = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()
    reloaded = signed_in.get(URL).content.decode()

    explanation = "The content filter blocked this prompt"
    assert explanation in live
    assert explanation in reloaded


def test_a_running_card_shows_elapsed_time_the_typical_one_and_placeholders_at_its_aspect(
    signed_in, sent
):
    signed_in.post(
        URL,
        form(model="seedream-5-0-flash", size="custom", custom_size="2560x1440", n="2"),
        headers=HTMX,
    )
    generation = Generation.objects.get()

    card = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()

    assert '<span class="elapsed">0 s</span> so far' in card
    assert "Seedream 5.0 Flash usually takes 11\u201320 s an image." in card
    assert card.count('viewBox="0 0 2560 1440"') == 2  # one placeholder per image asked for
    assert "every 1s" in card


def test_a_model_without_a_typical_duration_says_none(signed_in, sent):
    signed_in.post(URL, form(model="seedream-4-5", size="2K", n="1"), headers=HTMX)
    generation = Generation.objects.get()

    card = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()

    assert "usually takes" not in card and "so far" in card


def test_a_finished_card_offers_each_image_large_to_download_and_to_copy(signed_in, sent):
    signed_in.post(URL, form(n="2"), headers=HTMX)
    generation = Generation.objects.get()
    services.run_queued_generation(generation.pk)

    card = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()

    for image in generation.images.all():
        assert f'href="/dashboard/gallery/{image.token}/download/" download>' in card
        extension = image.file.name.rsplit(".", 1)[-1]
        assert f'data-copy-url="/img/{image.token}.{extension}"' in card
        assert f'data-full="/img/{image.token}.{extension}"' in card  # the lightbox's picture
    assert 'sizes="(min-width: 900px) 48rem, 100vw"' in card  # the newest: its large file
    assert "spinner" not in card and "placeholder" not in card
    assert f'href="/dashboard/requests/{generation.public_id}/"' in card


def test_switching_model_keeps_a_typed_custom_size(signed_in):
    """The form asks for itself again when the model changes: the custom size typed stays the
    custom size (it once came back as the literal text "custom")."""
    page = signed_in.get(
        URL,
        {"model": "seedream-4-5", "size": "custom", "custom_size": "2560x1440", "prompt": "a"},
        headers=HTMX,
    ).content.decode()

    assert '<option value="custom" selected>' in page
    assert 'name="custom_size" value="2560x1440"' in page
    assert 'value="custom" inputmode' not in page


def test_an_invalid_size_is_reported_once_in_plain_words(signed_in, sent):
    response = signed_in.post(URL, form(size="custom", custom_size="9x9"), headers=HTMX)

    page = response.content.decode()
    assert page.count(f"9{TIMES}9 is too small for Seedream 4.0") == 1
    assert "Invalid value" not in page and "&#x27;size&#x27;" not in page
    assert "nearest size it makes is" in page
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    ("custom_size", "says"),
    [
        ("big", "“big” is not a size. Type the width and height in pixels, such as 1536x1024"),
        ("8192x256", f"8192{TIMES}256 is too wide for Seedream 4.0."),
        ("8192x8192", f"8192{TIMES}8192 is too large for Seedream 4.0: it makes 1.0 to 16.8 "
                      "megapixels."),
    ],
)  # fmt: skip
def test_the_live_price_says_what_is_wrong_with_a_size_in_plain_words(signed_in, custom_size, says):
    page = signed_in.get(
        f"{URL}quote/", {"model": "seedream-4-0", "size": "custom", "custom_size": custom_size}
    ).content.decode()

    assert says in page
    assert "Invalid value" not in page and "pixels (width x height)" not in page


def test_a_failure_is_explained_and_shown_as_not_charged(signed_in, owner, sent):
    signed_in.post(URL, form(prompt="nope [sim:block-prompt]", n="2"), headers=HTMX)
    generation = Generation.objects.get()
    services.run_queued_generation(generation.pk)

    done = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()

    assert "The content filter blocked this prompt" in done
    assert "Not charged · 80 credits held for it returned." in done
    assert assert_ledger_balanced(owner) == 1000


def test_an_outsider_cannot_see_anothers_generation_card(client, owner, outsider, sent):
    client.force_login(owner)
    client.post(URL, form())
    generation = Generation.objects.get()
    client.force_login(outsider)

    assert client.get(f"{URL}generations/{generation.public_id}/").status_code == 404
    assert "a paper boat" not in client.get(URL).content.decode()


def test_use_these_settings_fills_the_form(signed_in):
    page = signed_in.get(
        URL, {"prompt": "a heron", "model": "seedream-3-0", "size": "1000x1000", "seed": "42"}
    ).content.decode()

    assert "a heron</textarea>" in page
    assert 'value="1000x1000"' in page  # not a preset: it lands in the custom size
    assert 'value="42"' in page


def test_an_account_that_owes_credits_is_told_why_and_nothing_is_queued(signed_in, owner, sent):
    from billing import services as billing

    billing.take_back(
        owner.personal_account.pk,
        1500,
        reference="purchase:t",
        idempotency_key="t:refund",
        description="Refund",
    )  # 1000 from the balance, 500 owed

    page = signed_in.post(URL, form(), headers=HTMX).content.decode()

    assert "Your account owes 500 credits" in page
    assert sent == []


def test_the_playground_keeps_to_the_accounts_limits(signed_in, owner, sent, settings):
    settings.RATE_LIMIT_TIERS = [
        {"id": "free", "name": "Free", "requests_per_minute": 100, "images_per_minute": 3,
         "concurrent_generations": 5},
    ]  # fmt: skip

    first = signed_in.post(URL, form(n="2"), headers=HTMX)
    second = signed_in.post(URL, form(n="2"), headers=HTMX).content.decode()

    assert first.status_code == 200 and len(sent) == 1
    assert "Rate limit reached" in second and "3 images per minute (the Free tier)" in second
    assert len(sent) == 1
    assert assert_ledger_balanced(owner) == 920  # only the first is held
