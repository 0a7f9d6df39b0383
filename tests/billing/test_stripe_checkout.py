"""Buying credits: the buy forms, the Checkout Session sent to Stripe, the pages Stripe returns
to, and an installation without Stripe keys."""

from __future__ import annotations

import pytest

from billing.models import LedgerEntry, Purchase

pytestmark = pytest.mark.smoke


def buy(client, **data):
    return client.post("/dashboard/billing/buy/", data)


def test_the_billing_page_offers_each_pack_with_its_exact_credits(client, owner, fake_stripe):
    client.force_login(owner)

    page = client.get("/dashboard/billing/").content.decode()

    for price, credits in [("$5.00", "5,000"), ("$20.00", "20,000"), ("$100.00", "100,000")]:
        assert price in page and f"{credits} credits" in page
    assert "credits = amount in cents \N{MULTIPLICATION SIGN} 1000 ÷ 100, rounded down" in page
    assert '<label for="id_amount">Other amount (USD)</label>' in page
    assert '<label for="id_code">Promotion code</label>' in page
    assert "not set up" not in page


def test_a_pack_opens_a_checkout_session_and_sends_the_customer_to_it(client, owner, fake_stripe):
    client.force_login(owner)

    response = buy(client, pack="2000")

    purchase = Purchase.objects.get()
    session = fake_stripe.only_session()
    assert response.status_code == 303
    assert response["Location"] == session["url"]
    assert (purchase.user, purchase.amount_cents, purchase.currency, purchase.credits) == (
        owner,
        2000,
        "usd",
        20_000,
    )
    assert purchase.status == "pending"
    assert purchase.checkout_session_id == session["id"]
    # Nothing is credited by starting a purchase.
    assert not LedgerEntry.objects.filter(kind="top_up").exists()

    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call.headers["authorization"] == "Bearer sk_test_fake"
    assert call.headers["idempotency-key"] == f"purchase-{purchase.public_id}"
    assert call.form["mode"] == "payment"
    assert call.form["client_reference_id"] == str(owner.personal_account.pk)
    # Paid as the account's Customer (made first, with the account's email address), so the
    # invoice is made out to its billing details.
    [customer] = fake_stripe.customers.values()
    assert customer["email"] == owner.email
    assert call.form["customer"] == customer["id"]
    assert "customer_email" not in call.form
    assert call.form["line_items[0][quantity]"] == "1"
    assert call.form["line_items[0][price_data][currency]"] == "usd"
    assert call.form["line_items[0][price_data][unit_amount]"] == "2000"
    assert call.form["line_items[0][price_data][product_data][name]"] == (
        "20,000 Seedream API credits"
    )
    assert call.form["metadata[purchase_id]"] == str(purchase.public_id)
    assert call.form["metadata[user_id]"] == str(owner.pk)
    assert call.form["metadata[credits]"] == "20000"
    assert call.form["payment_intent_data[metadata][purchase_id]"] == str(purchase.public_id)
    assert call.form["success_url"] == (
        f"http://testserver/dashboard/billing/purchases/{purchase.public_id}/"
        "?session_id={CHECKOUT_SESSION_ID}"
    )
    assert call.form["cancel_url"] == (
        f"http://testserver/dashboard/billing/purchases/{purchase.public_id}/cancelled/"
    )


@pytest.mark.parametrize(
    ("typed", "cents", "credits"),
    [("25", 2500, 25_000), ("12.34", 1234, 12_340), ("$1,000.50", 100_050, 1_000_500)],
)
def test_a_custom_amount_buys_its_exact_credits(
    client, owner, fake_stripe, settings, typed, cents, credits
):
    settings.STRIPE_MAX_CENTS = 200_000
    client.force_login(owner)

    response = buy(client, amount=typed)

    assert response.status_code == 303
    purchase = Purchase.objects.get()
    assert (purchase.amount_cents, purchase.credits) == (cents, credits)
    assert fake_stripe.only_session()["amount_total"] == cents


def test_credits_follow_the_configured_rate_in_whole_credits(client, owner, fake_stripe, settings):
    settings.CREDITS_PER_USD = 333
    client.force_login(owner)

    buy(client, amount="5.01")

    # 501 * 333 // 100 = 1668.33 -> 1668: rounded down, never a fraction.
    assert Purchase.objects.get().credits == 1668


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("4.99", "Choose an amount from $5.00 to $500.00."),
        ("500.01", "Choose an amount from $5.00 to $500.00."),
        ("-10", "Choose an amount from $5.00 to $500.00."),
        ("1e9", "Choose an amount from $5.00 to $500.00."),
        ("NaN", "Choose an amount from $5.00 to $500.00."),
        ("10.001", "Enter an amount with at most two decimals."),
        ("ten", "Enter an amount such as 25 or 12.50."),
        ("", "This field is required."),
    ],
)
def test_an_amount_outside_the_bounds_is_refused_and_no_session_is_made(
    client, owner, fake_stripe, typed, error
):
    client.force_login(owner)

    response = buy(client, amount=typed)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert fake_stripe.requests == []
    assert not Purchase.objects.exists()


def test_a_pack_that_is_not_on_offer_is_refused(client, owner, fake_stripe):
    client.force_login(owner)

    response = buy(client, pack="1")

    assert response.status_code == 400
    assert fake_stripe.requests == []
    assert not Purchase.objects.exists()


def test_when_stripe_fails_the_customer_is_told_and_nothing_is_pending(client, owner, fake_stripe):
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", status=500)
    client.force_login(owner)

    response = buy(client, pack="500")

    assert response.status_code == 502
    assert "could not be opened just now, and nothing was charged" in response.content.decode()
    purchase = Purchase.objects.get()
    assert purchase.status == "failed"
    assert purchase.checkout_session_id is None


def test_without_stripe_keys_the_page_says_so_and_buying_is_refused(client, owner, settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    client.force_login(owner)

    page = client.get("/dashboard/billing/").content.decode()
    response = buy(client, pack="500")

    assert "Card payments are not set up on this installation" in page
    assert "redeem a promotion code" in page
    assert 'name="pack"' not in page and "Other amount" not in page
    assert response.status_code == 503
    assert not Purchase.objects.exists()


def test_a_secret_key_without_a_webhook_secret_is_not_enough(client, owner, settings):
    # Payments could be taken but never credited: better not to take them.
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = ""
    client.force_login(owner)

    assert "Card payments are not set up" in client.get("/dashboard/billing/").content.decode()
    assert buy(client, pack="500").status_code == 503


def test_visitors_are_sent_to_log_in(client, fake_stripe, owner):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()
    client.logout()

    for url in [
        f"/dashboard/billing/purchases/{purchase.public_id}/",
        f"/dashboard/billing/purchases/{purchase.public_id}/cancelled/",
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert buy(client, pack="500")["Location"].startswith("/accounts/login/")
    assert Purchase.objects.count() == 1


def test_an_outsider_gets_404_for_someone_elses_purchase(client, owner, outsider, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()
    client.force_login(outsider)

    assert client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").status_code == 404
    url = f"/dashboard/billing/purchases/{purchase.public_id}/cancelled/"
    assert client.get(url).status_code == 404


def test_the_buy_form_needs_a_csrf_token(owner, fake_stripe):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    assert buy(client, pack="500").status_code == 403
    assert fake_stripe.requests == []


def test_returning_before_the_webhook_shows_crediting_and_looks_again(client, owner, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()
    fake_stripe.pay(purchase.checkout_session_id)
    url = (
        f"/dashboard/billing/purchases/{purchase.public_id}/"
        f"?session_id={purchase.checkout_session_id}"
    )

    page = client.get(url).content.decode()

    assert "Payment received, crediting…" in page
    # The page's script fetches it again (a live region); "Check now" does it without script.
    assert 'data-poll-url="?session_id=' in page
    assert "&amp;wait=1" in page
    assert "Check now" in page
    # The page only looked: nothing was credited.
    purchase.refresh_from_db()
    assert purchase.status == "pending"
    assert not LedgerEntry.objects.filter(kind="top_up").exists()
    assert fake_stripe.calls("GET", f"/v1/checkout/sessions/{purchase.checkout_session_id}")


def test_the_page_stops_looking_after_a_while(client, owner, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()
    fake_stripe.pay(purchase.checkout_session_id)

    page = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/?wait=60").content
    assert b"data-poll-url" not in page
    assert b"taking longer than usual" in page


def test_an_unfinished_checkout_links_back_to_it(client, owner, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()

    page = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").content.decode()

    assert "We have not received this payment yet." in page
    assert purchase.checkout_url in page
    assert "data-poll-url" not in page


def test_an_asynchronous_payment_says_it_is_processing(client, owner, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()
    fake_stripe.pay(purchase.checkout_session_id, asynchronous=True)

    page = client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").content.decode()

    assert "being processed by your bank" in page
    assert "data-poll-url" not in page


def test_cancelling_returns_to_billing_and_changes_nothing(client, owner, fake_stripe):
    client.force_login(owner)
    buy(client, pack="500")
    purchase = Purchase.objects.get()

    response = client.get(
        f"/dashboard/billing/purchases/{purchase.public_id}/cancelled/", follow=True
    )

    assert response.redirect_chain == [("/dashboard/billing/", 302)]
    assert "Checkout cancelled: nothing was charged." in response.content.decode()
    purchase.refresh_from_db()
    assert purchase.status == "pending"


def test_an_account_cannot_open_checkout_pages_without_end(client, owner, fake_stripe, settings):
    settings.CHECKOUT_SESSIONS_PER_HOUR = 3
    client.force_login(owner)
    opened = [buy(client, pack="500").status_code for _ in range(3)]

    refused = buy(client, pack="500")

    assert opened == [303, 303, 303]
    assert refused.status_code == 429
    assert "many payment pages this hour" in refused.content.decode()
    assert len(fake_stripe.calls("POST", "/v1/checkout/sessions")) == 3
    assert Purchase.objects.count() == 3
