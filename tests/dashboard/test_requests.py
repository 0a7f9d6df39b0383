"""A request's page: its inputs, images, ledger lines and error, for its owner only; and the
pages that link to it."""

from __future__ import annotations

import re

import pytest

from billing import services as billing
from generation import services
from generation.models import Generation

# Every test here sees on_commit callbacks run at once (tests/dashboard/conftest.py).
pytestmark = pytest.mark.usefixtures("commits_at_once")

PLAYGROUND = "/dashboard/playground/"
HTMX = {"HX-Request": "true"}


def made(client, **overrides) -> Generation:
    """A playground generation, run to its end by the worker's service."""
    fields = {"prompt": "a paper boat", "model": "seedream-4-0", "size": "2048x2048", "n": "2"}
    client.post(PLAYGROUND, {**fields, **overrides}, headers=HTMX)
    generation = Generation.objects.latest("id")
    services.run_queued_generation(generation.pk)
    generation.refresh_from_db()
    return generation


def url(generation: Generation) -> str:
    return f"/dashboard/requests/{generation.public_id}/"


def test_the_owner_sees_what_was_asked_what_came_out_and_what_it_cost(signed_in, sent):
    generation = made(signed_in)

    page = signed_in.get(url(generation)).content.decode()

    assert f"Request <code>{generation.public_id}</code>" in page
    for text in [
        "a paper boat",
        "Seedream 4.0 (<code>seedream-4-0</code>)",
        "2048x2048",
        "2 of 2 images delivered",
        "charged 80 credits ($0.08)",
        "Playground",
    ]:
        assert text in page
    for image in generation.images.all():
        assert f'href="/dashboard/gallery/{image.token}/"' in page
    # Its three ledger lines and what they come to.
    cells = re.findall(
        r'<span class="badge (\w+)">\w+</span></td>\s*<td class="num">([^<]+)<', page
    )
    assert cells == [("reserve", "-80"), ("release", "+80"), ("charge", "-80")]
    assert '<td class="num">-80</td><td>-$0.08</td>' in page
    assert "What went wrong" not in page


def test_a_failure_says_why_in_plain_words_and_in_the_apis(signed_in, owner, sent):
    generation = made(signed_in, prompt="nope [sim:block-prompt]")

    page = signed_in.get(url(generation)).content.decode()

    assert "What went wrong" in page
    assert "The content filter blocked this prompt" in page
    assert "<code>content_policy_violation</code>" in page
    assert "not charged" in page
    assert '<td class="num">0</td><td>$0.00</td>' in page  # held, then all of it released


def test_a_request_refused_for_credits_shows_its_402_and_no_charges(client, user_factory, sent):
    poor = user_factory("poor@example.com", credits=10)
    client.force_login(poor)
    client.post(
        PLAYGROUND,
        {"prompt": "a", "model": "seedream-4-0", "size": "2048x2048", "n": "1"},
        headers=HTMX,
    )
    refused = Generation.objects.get()

    page = client.get(url(refused)).content.decode()

    assert "<dt>HTTP status</dt><dd>402</dd>" in page
    assert "Nothing was held or charged for this request." in page


def test_another_customer_gets_404_and_a_visitor_is_sent_to_log_in(client, owner, outsider, sent):
    client.force_login(owner)
    generation = made(client)
    client.force_login(outsider)
    assert client.get(url(generation)).status_code == 404
    assert client.get("/dashboard/requests/gen_nothing/").status_code == 404
    client.logout()
    response = client.get(url(generation))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_overview_usage_billing_gallery_and_playground_link_to_it(signed_in, sent):
    generation = made(signed_in)
    link = f'href="{url(generation)}"'
    image = generation.images.first()

    for page in ["/dashboard/", "/dashboard/usage/", "/dashboard/billing/",
                 f"/dashboard/gallery/{image.token}/", PLAYGROUND]:  # fmt: skip
        assert link in signed_in.get(page).content.decode(), page


def test_the_billing_history_links_only_the_owners_generations(client, owner, outsider, sent):
    client.force_login(outsider)
    theirs = made(client)
    # A ledger line naming another customer's generation (it cannot happen; the link must
    # still not be made from the reference alone).
    billing.grant(
        owner.personal_account,
        1,
        description="odd",
        idempotency_key="odd",
        reference=theirs.ledger_reference,
    )
    client.force_login(owner)

    page = client.get("/dashboard/billing/").content.decode()

    assert url(theirs) not in page and "odd" in page
