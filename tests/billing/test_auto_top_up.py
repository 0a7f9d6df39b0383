"""Automatic top-up: a card saved in a Checkout payment, charged off-session when a spend takes
the balance below the customer's threshold, credited by the webhook once; a decline stops it,
emails the customer and never charges that card again."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import Client

from billing import auto_top_up, services, stripe_client, tasks
from billing.models import BillingProfile, CreditAccount, Purchase, StripeEvent
from tests.support.fake_stripe import FakeStripe
from tests.support.money import assert_ledger_balanced, balance, ledger_kinds

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

SETTINGS_URL = "/dashboard/billing/auto-top-up/"
THRESHOLD = 5000
AMOUNT_CENTS = 2000


def configure(client: Client, threshold: Any = THRESHOLD, amount: Any = "20") -> Any:
    return client.post(SETTINGS_URL, {"threshold_credits": threshold, "amount": amount})


def buy_and_save_card(
    client: Client, fake_stripe: FakeStripe, deliver: Any, *, card: str = "pm_card_visa"
) -> Purchase:
    """The customer buys the $5.00 pack with "save the card" ticked and pays with ``card``."""
    assert client.post("/dashboard/billing/buy/", {"pack": "500", "save_card": "on"}).status_code
    purchase = Purchase.objects.filter(kind="checkout").latest("created_at")
    session = fake_stripe.pay(str(purchase.checkout_session_id), card=card)
    assert deliver(fake_stripe.event("checkout.session.completed", session)).status_code == 200
    purchase.refresh_from_db()
    return purchase


def account_of(user: Any) -> CreditAccount:
    return CreditAccount.objects.get(owner__personal_owner=user)


def spend(user: Any, credits: int, reference: str = "gen:1") -> bool:
    """A request holds ``credits``; returns what ``due`` says after it (the lead's hook asks it
    after every hold)."""
    before = balance(user)
    services.hold(
        user.personal_account.pk, {"held_credits": credits}, reference=reference, description="held"
    )
    return auto_top_up.due(account_of(user), before_credits=before, after_credits=balance(user))


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Any:
    """``with committed():`` runs what waits for the transaction's commit (the decline's email)
    as the block ends: the test's own transaction never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def armed(client: Client, owner: Any, fake_stripe: FakeStripe, deliver: Any) -> CreditAccount:
    """The owner (1000 credits) set "below 5,000 credits, buy $20.00", then bought $5.00 with
    the card saved: 6,000 credits, automatic top-up on."""
    client.force_login(owner)
    assert configure(client).status_code == 302
    buy_and_save_card(client, fake_stripe, deliver)
    account = account_of(owner)
    assert account.auto_top_up_enabled
    assert balance(owner) == 6000
    return account


def run_task(account: CreditAccount) -> str:
    return str(tasks.auto_top_up.apply(args=[account.pk]).get())


def posts(fake_stripe: FakeStripe, path: str) -> list[Any]:
    """The POSTs to exactly ``path``."""
    return [r for r in fake_stripe.requests if r.method == "POST" and r.path == path]


def charges(fake_stripe: FakeStripe) -> list[Any]:
    """The requests that charged a saved card: an invoice paid."""
    return [
        r
        for r in fake_stripe.requests
        if r.method == "POST" and r.path.startswith("/v1/invoices/") and r.path.endswith("/pay")
    ]


def succeeded(fake_stripe: FakeStripe, purchase: Purchase) -> dict[str, Any]:
    purchase.refresh_from_db()
    return fake_stripe.event(
        "payment_intent.succeeded", fake_stripe.payment_intent(purchase.payment_intent_id)
    )


# --- Saving the card ----------------------------------------------------------------------------


def test_a_payment_with_the_box_ticked_saves_the_card_and_turns_auto_top_up_on(
    client, owner, fake_stripe, deliver
):
    client.force_login(owner)
    configure(client)
    assert not account_of(owner).auto_top_up_enabled  # no card yet

    purchase = buy_and_save_card(client, fake_stripe, deliver)

    [call] = fake_stripe.calls("POST", "/v1/checkout/sessions")
    assert call.form["payment_intent_data[setup_future_usage]"] == "off_session"
    assert purchase.save_card
    account = account_of(owner)
    customer_id = BillingProfile.objects.get(account=account).stripe_customer_id
    card = fake_stripe.saved_card(customer_id)
    assert (account.auto_top_up_payment_method_id, account.auto_top_up_card) == (
        card["id"],
        "Visa ending 4242",
    )
    assert account.auto_top_up_enabled
    page = client.get("/dashboard/billing/").content.decode()
    assert "When a request takes your balance below <strong>5,000 credits</strong>" in page
    assert "<strong>$20.00</strong> (20,000 credits) to Visa ending 4242" in page


def test_without_the_box_no_card_is_saved(client, owner, fake_stripe, deliver):
    client.force_login(owner)
    configure(client)
    client.post("/dashboard/billing/buy/", {"pack": "500"})
    purchase = Purchase.objects.get()
    session = fake_stripe.pay(purchase.checkout_session_id)
    deliver(fake_stripe.event("checkout.session.completed", session))
    deliver(
        fake_stripe.event(
            "payment_intent.succeeded", fake_stripe.payment_intent(session["payment_intent"])
        )
    )

    account = account_of(owner)
    assert (account.auto_top_up_payment_method_id, account.auto_top_up_enabled) == ("", False)
    assert "payment_intent_data[setup_future_usage]" not in fake_stripe.requests[-4].form


def test_the_payment_intent_event_saves_the_card_when_the_lookup_failed(
    client, owner, fake_stripe, deliver
):
    client.force_login(owner)
    configure(client)
    client.post("/dashboard/billing/buy/", {"pack": "500", "save_card": "on"})
    purchase = Purchase.objects.get()
    session = fake_stripe.pay(purchase.checkout_session_id)
    fake_stripe.fail_next("GET", "/v1/payment_intents/", status=500)
    deliver(fake_stripe.event("checkout.session.completed", session))
    assert account_of(owner).auto_top_up_payment_method_id == ""

    event = fake_stripe.event(
        "payment_intent.succeeded", fake_stripe.payment_intent(session["payment_intent"])
    )
    assert deliver(event).json()["status"] == "processed"

    account = account_of(owner)
    assert account.auto_top_up_enabled
    assert (
        account.auto_top_up_payment_method_id
        == fake_stripe.payment_intent(session["payment_intent"])["payment_method"]
    )
    # A Checkout payment is credited by its session's event only: once.
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]


# --- The check after a hold ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (6000, 4999, True),  # from above to below
        (5000, 4999, True),  # from the threshold itself to below
        (5000, 0, True),
        (6000, 5000, False),  # down to the threshold: not below it
        (4999, 4000, False),  # below already: crossed before
        (7000, 6000, False),  # above still
        (4000, 6000, False),  # going up
    ],
)
def test_due_is_true_only_when_a_spend_crosses_the_threshold_downward(
    armed, before, after, expected
):
    assert auto_top_up.due(armed, before_credits=before, after_credits=after) is expected


def test_due_is_false_when_off_or_not_set_up(armed, settings):
    crossing = {"before_credits": 6000, "after_credits": 4000}
    off = CreditAccount(owner_id=armed.owner_id, auto_top_up_threshold_credits=THRESHOLD)
    assert auto_top_up.due(off, **crossing) is False
    no_threshold = CreditAccount(owner_id=armed.owner_id, auto_top_up_enabled=True)
    assert auto_top_up.due(no_threshold, **crossing) is False
    assert auto_top_up.due(armed, **crossing) is True
    settings.STRIPE_WEBHOOK_SECRET = ""  # card payments no longer set up
    assert auto_top_up.due(armed, **crossing) is False


def test_due_is_false_while_a_top_up_is_in_flight(armed, owner):
    crossing = {"before_credits": 6000, "after_credits": 4000}
    purchase = Purchase.objects.create(
        owner=owner.personal_account, kind="auto", amount_cents=2000, currency="usd", credits=20_000
    )
    assert auto_top_up.due(armed, **crossing) is False
    for status in ("failed", "paid"):
        Purchase.objects.filter(pk=purchase.pk).update(status=status)
        assert auto_top_up.due(armed, **crossing) is True, status


def test_the_database_allows_one_pending_top_up_per_account(armed, owner, outsider):
    def pending(user: Any) -> Purchase:
        return Purchase.objects.create(
            owner=user.personal_account,
            kind="auto",
            amount_cents=2000,
            currency="usd",
            credits=20_000,
        )

    pending(owner)
    pending(outsider)
    with pytest.raises(IntegrityError), transaction.atomic():
        pending(owner)
    # Checkout purchases are not limited.
    for _ in range(2):
        Purchase.objects.create(
            owner=owner.personal_account, user=owner, amount_cents=500, currency="usd", credits=5000
        )


# --- Charging -----------------------------------------------------------------------------------


def test_a_crossing_charges_the_saved_card_off_session_and_the_webhook_credits_once(
    client, owner, fake_stripe, deliver, armed
):
    assert spend(owner, 1500) is True

    assert run_task(armed) == "charged"

    purchase = Purchase.objects.get(kind="auto")
    key = f"auto-top-up-{purchase.public_id}"
    customer_id = BillingProfile.objects.get(account=armed).stripe_customer_id
    # An invoice to the Customer, its one line, finalized, and paid off-session with the card.
    [created] = posts(fake_stripe, "/v1/invoices")
    assert created.headers["idempotency-key"] == f"{key}-invoice"
    assert created.form["customer"] == customer_id
    assert created.form["collection_method"] == "charge_automatically"
    assert (created.form["auto_advance"], created.form["currency"]) == ("false", "usd")
    assert created.form["metadata[purchase_id]"] == str(purchase.public_id)
    assert created.form["metadata[account_id]"] == str(owner.personal_account.pk)
    assert created.form["metadata[kind]"] == "auto"
    [item] = posts(fake_stripe, "/v1/invoiceitems")
    assert item.headers["idempotency-key"] == f"{key}-item"
    assert (item.form["amount"], item.form["currency"]) == ("2000", "usd")
    assert (item.form["customer"], item.form["invoice"]) == (customer_id, purchase.invoice_id)
    [finalized] = posts(fake_stripe, f"/v1/invoices/{purchase.invoice_id}/finalize")
    assert finalized.headers["idempotency-key"] == f"{key}-finalize"
    [call] = charges(fake_stripe)
    assert call.path == f"/v1/invoices/{purchase.invoice_id}/pay"
    assert call.headers["idempotency-key"] == f"{key}-pay"
    assert call.form["off_session"] == "true"
    assert call.form["payment_method"] == armed.auto_top_up_payment_method_id
    assert not fake_stripe.calls("POST", "/v1/payment_intents")
    # Charged, not credited: only the webhook credits.
    assert (purchase.status, purchase.credits, purchase.credited_at) == ("pending", 20_000, None)
    assert purchase.payment_intent_id
    assert balance(owner) == 4500
    # While it is in flight, another crossing starts nothing.
    assert spend(owner, 10, reference="gen:2") is False

    event = succeeded(fake_stripe, purchase)
    assert deliver(event).json()["status"] == "processed"
    assert deliver(event).status_code == 200
    assert deliver(succeeded(fake_stripe, purchase)).status_code == 200  # a second event

    purchase.refresh_from_db()
    assert purchase.status == "paid"
    assert (
        purchase.receipt_url
        == fake_stripe.charges[
            fake_stripe.payment_intent(purchase.payment_intent_id)["latest_charge"]
        ]["receipt_url"]
    )
    assert ledger_kinds(owner)[-1] == ("top_up", 20_000)
    assert [k for k, _ in ledger_kinds(owner)].count("top_up") == 2
    assert assert_ledger_balanced(owner) == 4490 + 20_000
    page = client.get("/dashboard/billing/").content.decode()
    assert "Automatic top-up of $20.00" in page
    assert '<span class="help">Automatic top-up</span>' in page
    assert purchase.receipt_url in page
    # Its invoice, like a Checkout payment's.
    assert purchase.invoice_number == fake_stripe.invoice(purchase.invoice_id)["number"]
    assert f"/purchases/{purchase.public_id}/invoice/" in page
    assert "Download invoice" in page


def test_running_the_task_again_charges_nothing_more(client, owner, fake_stripe, deliver, armed):
    spend(owner, 1500)
    assert run_task(armed) == "charged"

    # Again while in flight, and again once credited (the balance is above the threshold).
    assert run_task(armed) == "nothing"
    deliver(succeeded(fake_stripe, Purchase.objects.get(kind="auto")))
    assert run_task(armed) == "nothing"

    assert len(charges(fake_stripe)) == 1
    assert Purchase.objects.filter(kind="auto").count() == 1
    assert assert_ledger_balanced(owner) == 24_500


def test_a_top_up_that_leaves_the_balance_below_is_not_repeated_by_a_repeat_of_the_task(
    client, owner, fake_stripe, deliver, armed
):
    # Below 5,500 credits buy $5.00: from 100, 5,000 credits do not get back above 5,500.
    configure(client, threshold=5500, amount="5")
    assert spend(owner, 5900) is True
    assert run_task(armed) == "charged"
    deliver(succeeded(fake_stripe, Purchase.objects.get(kind="auto")))
    assert balance(owner) == 5100

    # The task delivered again, and a spend that does not cross again from above.
    assert run_task(armed) == "nothing"
    assert spend(owner, 200, reference="gen:2") is False
    assert run_task(armed) == "nothing"

    assert len(charges(fake_stripe)) == 1


def test_a_new_crossing_after_a_top_up_charges_again(client, owner, fake_stripe, deliver, armed):
    spend(owner, 1500)
    run_task(armed)
    deliver(succeeded(fake_stripe, Purchase.objects.get(kind="auto")))
    assert balance(owner) == 24_500

    assert spend(owner, 20_000, reference="gen:2") is True
    assert run_task(armed) == "charged"

    assert Purchase.objects.filter(kind="auto").count() == 2
    assert len(charges(fake_stripe)) == 2


def test_the_task_does_nothing_when_the_balance_is_back_above(owner, fake_stripe, deliver, armed):
    spend(owner, 1500)
    services.grant(owner.personal_account, 1000, description="gift", idempotency_key="gift")

    assert run_task(armed) == "nothing"

    assert not charges(fake_stripe)


def test_the_task_does_nothing_for_a_closed_account(owner, fake_stripe, armed):
    spend(owner, 1500)
    owner.closed_at = owner.date_joined
    owner.save(update_fields=["closed_at"])

    assert run_task(armed) == "nothing"

    assert not Purchase.objects.filter(kind="auto").exists()


# --- Declines -----------------------------------------------------------------------------------


def test_a_declined_card_stops_auto_top_up_and_emails_the_customer(
    client, owner, fake_stripe, deliver, armed, settings, committed
):
    settings.SITE_URL = "https://seedream.example"
    fake_stripe.decline_later(armed.auto_top_up_payment_method_id)
    spend(owner, 1500)

    with committed():
        assert run_task(armed) == "declined"

    purchase = Purchase.objects.get(kind="auto")
    assert (purchase.status, purchase.failure_reason) == (
        "failed",
        "Your card has insufficient funds.",
    )
    assert purchase.payment_intent_id  # the failed PaymentIntent, for the books
    account = account_of(owner)
    assert not account.auto_top_up_enabled
    assert (account.auto_top_up_payment_method_id, account.auto_top_up_card) == ("", "")
    assert account.auto_top_up_stopped_at is not None
    assert account.auto_top_up_stop_reason == "Your card has insufficient funds."
    assert balance(owner) == 4500  # nothing credited
    [email] = mail.outbox
    assert email.to == [owner.email]
    assert email.subject == "[Seedream API] Automatic top-up stopped: your card was declined"
    assert "Your card has insufficient funds." in email.body
    assert "tried to charge $20.00 to Visa ending 4242 for 20,000 credits" in email.body
    assert "https://seedream.example/dashboard/billing/#auto-top-up" in email.body
    assert "will not try this card again" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert 'href="https://seedream.example/dashboard/billing/#auto-top-up"' in html
    page = client.get("/dashboard/billing/").content.decode()
    assert "Automatic top-up stopped on" in page
    assert "We will not charge that card again." in page

    # Stripe's event of the same decline changes nothing more, and sends no second email.
    event = fake_stripe.event(
        "payment_intent.payment_failed", fake_stripe.payment_intent(purchase.payment_intent_id)
    )
    with committed():
        assert deliver(event).json()["status"] == "processed"
    assert len(mail.outbox) == 1

    # A further crossing does nothing, and the card is never asked again.
    services.grant(owner.personal_account, 2000, description="gift", idempotency_key="gift")
    assert spend(owner, 3000, reference="gen:2") is False
    assert run_task(armed) == "nothing"
    assert len(charges(fake_stripe)) == 1


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        (
            "pm_card_authenticationRequired",
            "Your bank wants you to confirm each payment, which it cannot ask for while you "
            "are away.",
        ),
        ("pm_card_chargeDeclinedExpiredCard", "Your card has expired."),
        ("pm_card_chargeDeclined", "Your bank declined the payment."),
    ],
)
def test_each_kind_of_decline_stops_it_with_its_reason(
    client, owner, fake_stripe, deliver, committed, card, reason
):
    client.force_login(owner)
    configure(client)
    if card == "pm_card_authenticationRequired":
        # Paid at Checkout (its owner authenticates there), declined when they are away.
        buy_and_save_card(client, fake_stripe, deliver, card=card)
    else:
        buy_and_save_card(client, fake_stripe, deliver)
        # Stripe's test PaymentMethod of that card, as if it were the one saved.
        CreditAccount.objects.filter(owner__personal_owner=owner).update(
            auto_top_up_payment_method_id=card
        )
    account = account_of(owner)
    spend(owner, 1500)

    with committed():
        assert run_task(account) == "declined"

    assert Purchase.objects.get(kind="auto").failure_reason == reason
    account.refresh_from_db()
    assert (account.auto_top_up_enabled, account.auto_top_up_stop_reason) == (False, reason)
    assert len(mail.outbox) == 1
    assert reason in mail.outbox[0].body


def test_the_event_of_a_decline_alone_stops_it_once(owner, fake_stripe, deliver, armed, committed):
    fake_stripe.decline_later(armed.auto_top_up_payment_method_id)
    spend(owner, 1500)
    purchase = auto_top_up.start(armed.pk)
    assert purchase is not None
    # The invoice is made and charged; the answers are lost, and Stripe's event arrives first.
    customer_id = BillingProfile.objects.get(account=armed).stripe_customer_id
    key = f"auto-top-up-{purchase.public_id}"
    metadata = {"purchase_id": str(purchase.public_id), "account_id": str(armed.owner_id)}
    invoice = stripe_client.create_invoice(
        currency="usd", customer_id=customer_id, description="x", footer="", metadata=metadata,
        idempotency_key=key,
    )  # fmt: skip
    stripe_client.add_invoice_line(
        invoice.id, amount_cents=purchase.amount_cents, currency="usd", customer_id=customer_id,
        description="x", metadata=metadata, idempotency_key=key,
    )  # fmt: skip
    with pytest.raises(stripe_client.CardDeclined):
        stripe_client.pay_invoice(
            invoice.id, payment_method_id=armed.auto_top_up_payment_method_id, idempotency_key=key
        )
    event = fake_stripe.event("invoice.payment_failed", fake_stripe.invoice(invoice.id))

    with committed():
        assert deliver(event).json()["status"] == "processed"
        assert deliver(event).status_code == 200
        # The task asking again finds the work done.
        assert auto_top_up.submit(purchase.pk) == "nothing"

    purchase.refresh_from_db()
    # The invoice's event says not why; the card is forgotten all the same.
    assert (purchase.status, purchase.failure_reason) == (
        "failed",
        "Your bank declined the payment.",
    )
    assert not account_of(owner).auto_top_up_enabled
    assert len(mail.outbox) == 1
    assert balance(owner) == 4500


def test_the_api_answer_and_the_event_of_one_decline_email_once(
    owner, fake_stripe, armed, committed
):
    spend(owner, 1500)
    purchase = auto_top_up.start(armed.pk)
    assert purchase is not None
    card = armed.auto_top_up_payment_method_id

    with committed():
        first = auto_top_up.declined(purchase, payment_method_id=card, reason="No.")
        second = auto_top_up.declined(purchase, payment_method_id=card, reason="No.")

    assert (first, second) == (True, False)
    assert len(mail.outbox) == 1


def test_after_a_decline_only_the_customer_turns_it_on_again_with_a_card_saved_anew(
    client, owner, fake_stripe, deliver, armed
):
    old_card = armed.auto_top_up_payment_method_id
    old_purchase = Purchase.objects.get(kind="checkout")
    fake_stripe.decline_later(old_card)
    spend(owner, 1500)
    run_task(armed)
    # Settings saved again: no card, so it stays off.
    configure(client)
    assert not account_of(owner).auto_top_up_enabled
    # A late event of the payment that saved the declined card does not bring it back.
    deliver(
        fake_stripe.event(
            "payment_intent.succeeded", fake_stripe.payment_intent(old_purchase.payment_intent_id)
        )
    )
    assert account_of(owner).auto_top_up_payment_method_id == ""

    buy_and_save_card(client, fake_stripe, deliver, card="pm_card_mastercard")

    account = account_of(owner)
    assert account.auto_top_up_enabled
    assert account.auto_top_up_card == "Mastercard ending 4444"
    assert account.auto_top_up_payment_method_id not in ("", old_card)
    assert (account.auto_top_up_stopped_at, account.auto_top_up_stop_reason) == (None, "")


# --- Stripe unreachable -------------------------------------------------------------------------


def test_when_stripe_cannot_be_reached_the_charge_is_asked_again_with_the_same_key(
    owner, fake_stripe, deliver, armed, monkeypatch
):
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.submit_auto_top_up, "apply_async", lambda args, countdown: queued.append(args)
    )
    fake_stripe.fail_next("POST", "/v1/invoices", status=500)
    spend(owner, 1500)

    assert run_task(armed) == "retrying"

    purchase = Purchase.objects.get(kind="auto")
    assert (purchase.status, purchase.payment_intent_id, purchase.invoice_id) == ("pending", "", "")
    assert queued == [(purchase.pk,)]
    assert tasks.submit_auto_top_up.apply(args=[purchase.pk]).get() == "charged"
    assert tasks.submit_auto_top_up.apply(args=[purchase.pk]).get() == "nothing"
    keys = {c.headers["idempotency-key"] for c in posts(fake_stripe, "/v1/invoices")}
    assert keys == {f"auto-top-up-{purchase.public_id}-invoice"}
    assert len(fake_stripe.invoices) == 2  # the Checkout payment's, and this one
    assert len(fake_stripe.payment_intents) == 2
    assert len(charges(fake_stripe)) == 1
    deliver(succeeded(fake_stripe, purchase))
    assert assert_ledger_balanced(owner) == 24_500


def test_after_the_last_retry_it_gives_up_and_stays_on(owner, fake_stripe, deliver, armed):
    spend(owner, 1500)
    purchase = auto_top_up.start(armed.pk)
    assert purchase is not None
    fake_stripe.fail_next("POST", "/v1/invoices", status=500)

    last = len(tasks.AUTO_TOP_UP_RETRY_SECONDS)
    assert tasks.submit_auto_top_up.apply(args=[purchase.pk, last]).get() == "given up"

    purchase.refresh_from_db()
    assert purchase.status == "failed"
    assert "Stripe could not be reached" in purchase.failure_reason
    assert account_of(owner).auto_top_up_enabled
    assert not mail.outbox


# --- Settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "amount", "error"),
    [
        ("0", "20", "Choose a threshold of at least 1 credit."),
        ("-5", "20", "Choose a threshold of at least 1 credit."),
        ("10000001", "20", "Choose a threshold of at most 10,000,000 credits."),
        ("lots", "20", "Enter a whole number of credits, such as 5000."),
        ("", "20", "This field is required."),
        ("5000", "4.99", "Choose an amount from $5.00 to $500.00."),
        ("5000", "500.01", "Choose an amount from $5.00 to $500.00."),
        ("5000", "20.001", "Enter an amount with at most two decimals."),
        ("5000", "twenty", "Enter an amount such as 25 or 12.50."),
        ("5000", "", "This field is required."),
    ],
)
def test_the_settings_form_refuses_values_out_of_bounds(
    client, owner, fake_stripe, threshold, amount, error
):
    client.force_login(owner)

    response = configure(client, threshold=threshold, amount=amount)

    assert response.status_code == 400
    assert error in response.content.decode()
    account = CreditAccount.objects.filter(owner__personal_owner=owner).first()
    assert account is None or account.auto_top_up_threshold_credits is None
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("threshold", "amount", "cents"), [("1", "5", 500), ("10000000", "500", 50_000)]
)
def test_the_settings_form_takes_its_bounds(client, owner, fake_stripe, threshold, amount, cents):
    client.force_login(owner)

    response = configure(client, threshold=threshold, amount=amount)

    assert response.status_code == 302
    account = account_of(owner)
    assert (account.auto_top_up_threshold_credits, account.auto_top_up_amount_cents) == (
        int(threshold),
        cents,
    )
    assert not account.auto_top_up_enabled  # no card yet
    page = client.get("/dashboard/billing/").content.decode()
    assert "To turn automatic top-up on, buy credits with" in page


def test_turning_it_off_keeps_the_card_and_turning_it_on_takes_it_again(
    client, owner, fake_stripe, armed
):
    assert client.post(SETTINGS_URL, {"turn_off": ""}).status_code == 302
    account = account_of(owner)
    assert not account.auto_top_up_enabled
    assert account.auto_top_up_payment_method_id == armed.auto_top_up_payment_method_id
    assert spend(owner, 1500) is False
    assert "Save and turn on" in client.get("/dashboard/billing/").content.decode()

    configure(client)

    assert account_of(owner).auto_top_up_enabled


def test_removing_the_card_detaches_it_at_stripe(client, owner, fake_stripe, armed):
    card = armed.auto_top_up_payment_method_id

    assert client.post(SETTINGS_URL, {"remove_card": ""}).status_code == 302

    account = account_of(owner)
    assert (account.auto_top_up_enabled, account.auto_top_up_payment_method_id) == (False, "")
    assert fake_stripe.payment_methods[card]["customer"] is None
    assert "Card removed" in client.get("/dashboard/billing/").content.decode()


def test_the_settings_need_card_payments_a_csrf_token_and_a_signed_in_customer(
    client, owner, settings
):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert configure(strict).status_code == 403
    assert configure(Client())["Location"].startswith("/accounts/login/")
    client.force_login(owner)
    settings.STRIPE_SECRET_KEY = ""
    assert configure(client).status_code == 503
    assert not CreditAccount.objects.filter(auto_top_up_threshold_credits__isnull=False).exists()


def test_an_outsider_cannot_see_or_touch_anothers_top_ups(
    client, owner, outsider, fake_stripe, deliver, armed
):
    spend(owner, 1500)
    run_task(armed)
    purchase = Purchase.objects.get(kind="auto")
    client.force_login(outsider)

    assert client.get(f"/dashboard/billing/purchases/{purchase.public_id}/").status_code == 404
    page = client.get("/dashboard/billing/").content.decode()
    assert "Visa ending 4242" not in page
    assert str(purchase.public_id) not in page
    client.post(SETTINGS_URL, {"remove_card": ""})
    assert account_of(owner).auto_top_up_payment_method_id == armed.auto_top_up_payment_method_id


def test_an_auto_top_up_event_naming_another_customer_is_refused(
    owner, outsider, fake_stripe, deliver, armed
):
    spend(owner, 1500)
    run_task(armed)
    purchase = Purchase.objects.get(kind="auto")
    intent = fake_stripe.payment_intent(purchase.payment_intent_id)
    intent["metadata"]["account_id"] = str(outsider.personal_account.pk)

    response = deliver(fake_stripe.event("payment_intent.succeeded", intent))

    assert response.status_code == 500
    assert StripeEvent.objects.filter(status="failed").count() == 1
    assert balance(owner) == 4500


# --- Through the API: the hold that crosses the threshold starts it -------------------------------


def test_an_api_request_that_crosses_the_threshold_tops_up_once(
    client, owner, armed, fake_stripe, deliver, api_key_factory, default_prices, monkeypatch
):
    import json

    from generation import tasks as generation_tasks

    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(generation_tasks, "send_alerts", sent.extend)
    services.adjust(
        owner.personal_account, -(balance(owner) - 5010), reason="test", operator="test"
    )
    key = api_key_factory(owner).raw_key

    def generate() -> None:
        response = client.post(
            "/v1/images/generations",
            json.dumps({"model": "seedream-4-0", "prompt": "a fox", "size": "1024x1024"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.content

    generate()  # 5010 -> 4970: below 5,000
    assert sent == [("auto_top_up", (armed.pk,))]
    generate()  # further below: no second crossing
    assert sent == [("auto_top_up", (armed.pk,))]

    # The worker runs it (twice, as a repeat would): one charge, credited once by the webhook.
    assert run_task(armed) != "nothing"
    assert run_task(armed) == "nothing"
    purchase = Purchase.objects.get(kind="auto")
    event = succeeded(fake_stripe, purchase)
    assert deliver(event).status_code == deliver(event).status_code == 200
    assert balance(owner) == 4930 + 20_000
    assert assert_ledger_balanced(owner) == 4930 + 20_000


def test_closing_the_account_stops_auto_top_up_and_takes_the_card_off_at_stripe(
    owner, armed, fake_stripe, committed
):
    from accounts.services import close_account

    card = armed.auto_top_up_payment_method_id
    with committed():
        close_account(owner)

    account = account_of(owner)
    assert (account.auto_top_up_enabled, account.auto_top_up_payment_method_id) == (False, "")
    assert fake_stripe.calls("POST", f"/v1/payment_methods/{card}/detach")
    assert run_task(account) == "nothing"


def test_closing_the_account_erases_its_billing_details(owner, armed):
    from accounts.services import close_account

    BillingProfile.objects.filter(account=armed).update(
        company_name="Ann's Studio", address_line1="1 Main St", tax_id_type="eu_vat",
        tax_id_value="DE123456789",
    )  # fmt: skip
    close_account(owner)

    profile = BillingProfile.objects.get(account=armed)
    assert (profile.company_name, profile.address_line1, profile.tax_id_value) == ("", "", "")
    assert profile.stripe_customer_id  # still finds the account for a later refund


# --- The sweep: what the tasks missed -------------------------------------------------------------


def test_a_top_up_whose_worker_died_before_charging_is_sent_by_the_sweep(
    owner, fake_stripe, deliver, armed
):
    from datetime import timedelta

    from django.utils import timezone

    spend(owner, 1500)  # 4500: below 5,000
    purchase = auto_top_up.start(armed.pk)  # recorded, then the worker died
    assert purchase is not None
    assert run_task(armed) == "nothing"  # a repeat of the task finds it in flight

    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=6)) == 1

    purchase.refresh_from_db()
    assert purchase.payment_intent_id
    assert deliver(succeeded(fake_stripe, purchase)).status_code == 200
    assert balance(owner) == 4500 + 20_000
    assert auto_top_up.sweep(timezone.now() + timedelta(minutes=12)) == 0  # above again


def test_a_top_up_stalled_past_its_age_fails_and_auto_top_up_stays_on(owner, armed, fake_stripe):
    from datetime import timedelta

    from django.utils import timezone

    spend(owner, 1500)
    purchase = auto_top_up.start(armed.pk)
    assert purchase is not None

    auto_top_up.sweep(timezone.now() + timedelta(hours=2))

    purchase.refresh_from_db()
    assert purchase.status == "failed"
    assert not charges(fake_stripe)
    assert account_of(owner).auto_top_up_enabled


def test_a_crossing_whose_task_was_lost_is_topped_up_by_the_sweep_once(owner, fake_stripe, armed):
    spend(owner, 1500)  # the hold crossed; its task never reached the broker

    assert auto_top_up.sweep() == 1
    assert auto_top_up.sweep() == 0  # one per crossing: the first is in flight

    assert len(charges(fake_stripe)) == 1


def test_a_card_stripe_refuses_to_charge_stops_auto_top_up_like_a_decline(
    owner, fake_stripe, armed, committed
):
    fake_stripe.fail_next(
        "POST", "/v1/invoices/", status=400, error_type="invalid_request_error",
        message="The PaymentMethod was previously used and detached.",
    )  # fmt: skip
    spend(owner, 1500)

    with committed():
        assert run_task(armed) == "declined"

    account = account_of(owner)
    assert (account.auto_top_up_enabled, account.auto_top_up_payment_method_id) == (False, "")
    assert "can no longer be charged" in account.auto_top_up_stop_reason
    assert len(mail.outbox) == 1
    assert auto_top_up.sweep() == 0  # never tried again
