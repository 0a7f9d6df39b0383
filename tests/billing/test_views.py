"""The billing page: the owner's balance and ledger, nobody else's."""

from __future__ import annotations

import pytest

from billing import services


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get("/dashboard/billing/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_owner_sees_their_balance_and_every_line(client, owner, outsider):
    services.hold(
        owner.personal_account.pk,
        {"held_credits": 80},
        reference="gen:7",
        description="2 x seedream-4-0 (gen_abc)",
    )
    services.settle(
        owner.personal_account.pk,
        {"held_credits": 80, "charged_credits": 40},
        reference="gen:7",
        description="1 of 2",
    )
    services.grant(
        outsider.personal_account, 5, description="outsider secret grant", idempotency_key="o:1"
    )
    client.force_login(owner)

    page = client.get("/dashboard/billing/").content.decode()

    assert "960 credits" in page
    for text in [
        "test credits",
        "Reserve: 2 x seedream-4-0 (gen_abc)",
        "Release: Released hold: 1 of 2",
        "+80",
        "-40",
    ]:
        assert text in page
    # One line for the generation (its net), one for the grant: the steps are folded under it.
    assert page.count('<tr class="statement-line">') == 2
    assert '<td class="num">-40</td>' in page and "3 ledger lines" in page
    assert "outsider secret grant" not in page
    assert "Card payments are not set up" in page


def test_without_card_payments_the_page_says_whom_to_ask_for_credits(client, owner, settings):
    client.force_login(owner)
    settings.SUPPORT_EMAIL = "billing@operator.example"
    page = client.get("/dashboard/billing/").content.decode()
    assert '<h2 id="buy-title">Get credits</h2>' in page
    assert 'Write to <a href="mailto:billing@operator.example?subject=Credits">' in page

    settings.SUPPORT_EMAIL = ""
    page = client.get("/dashboard/billing/").content.decode()
    assert "Ask the operator of this installation for credits" in page


def test_the_history_is_paginated_newest_first(client, owner):
    for i in range(60):
        services.grant(
            owner.personal_account, 1, description=f"drip {i}", idempotency_key=f"drip:{i}"
        )
    client.force_login(owner)

    first = client.get("/dashboard/billing/").content.decode()
    second = client.get("/dashboard/billing/?page=2").content.decode()

    assert "drip 59" in first and "drip 10" in first and "drip 9" not in first
    assert "drip 9" in second and "test credits" in second
    assert "Page 2 of 2" in second


@pytest.mark.parametrize("page_number", ["999", "x", "-1"])
def test_a_page_out_of_range_shows_a_real_page(client, owner, page_number):
    client.force_login(owner)
    assert client.get(f"/dashboard/billing/?page={page_number}").status_code == 200
