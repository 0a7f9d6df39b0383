"""Money that comes back to us brings its credits back: a dispute won, a refund that failed.
Once each, whatever the order and the number of the events that say so, and a refund made after
a failed one is still taken back right."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from billing import services
from billing.models import CreditAccount, DebtEntry, LedgerEntry, Purchase, StripeEvent
from tests.support.money import assert_ledger_balanced, ledger_kinds, ledger_rows

from .conftest import paid

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def deliver_ok(deliver, event):
    response = deliver(event)
    assert response.status_code == 200, response.content
    return response.json()["status"]


def purchase_state(purchase):
    purchase.refresh_from_db()
    return (
        purchase.status,
        purchase.refunded_cents,
        purchase.disputed_cents,
        purchase.reversed_credits,
    )


def spend(user, credits):
    services.hold(
        user.personal_account.pk, {"held_credits": credits}, reference="gen:1", description="images"
    )
    services.settle(
        user.personal_account.pk,
        {"held_credits": credits, "charged_credits": credits},
        reference="gen:1",
        description="images",
    )


# --- Disputes -------------------------------------------------------------------------------


@pytest.fixture
def disputed(fake_stripe, deliver, bought):
    """The $5.00 purchase was paid (6000 credits), then disputed in full (back to 1000)."""
    paid(fake_stripe, deliver, bought)
    dispute = fake_stripe.dispute(bought.checkout_session_id)
    assert deliver_ok(deliver, fake_stripe.event("charge.dispute.created", dispute)) == "processed"
    return dispute


def test_a_won_dispute_gives_its_credits_back(
    client, owner, fake_stripe, deliver, bought, disputed
):
    assert assert_ledger_balanced(owner) == 1000
    closed = fake_stripe.event(
        "charge.dispute.closed", fake_stripe.close_dispute(disputed["id"], "won")
    )

    assert deliver_ok(deliver, closed) == "processed"

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert ledger_rows(owner, f"purchase:{bought.public_id}") == [
        ("top_up", 5000, 6000),
        ("reversal", -5000, 1000),
        ("reinstated", 5000, 6000),
    ]
    line = LedgerEntry.objects.get(kind="reinstated")
    assert line.idempotency_key == f"stripe:{closed['id']}:reinstated"
    assert line.description == (
        "Payment of $5.00 reinstated (the dispute was won): 5000 credits given back"
    )
    assert assert_ledger_balanced(owner) == 6000
    page = client.get("/dashboard/billing/").content.decode()
    assert '<span class="badge success">Paid</span>' in page
    assert '<span class="badge reinstated">Payment reinstated</span>' in page
    assert "5000 credits given back" in page


def test_a_won_dispute_gives_back_once_however_often_it_is_told(
    owner, fake_stripe, deliver, bought, disputed
):
    won = fake_stripe.close_dispute(disputed["id"], "won")
    closed = fake_stripe.event("charge.dispute.closed", won)
    # Stripe also sends funds_reinstated with a won dispute, and may send closed twice.
    reinstated = fake_stripe.event("charge.dispute.funds_reinstated", won)
    closed_again = fake_stripe.event("charge.dispute.closed", won)

    statuses = [deliver_ok(deliver, e) for e in (closed, closed, reinstated, closed_again)]

    assert statuses == ["processed", "processed", "ignored", "processed"]
    assert [k for k, _ in ledger_kinds(owner)].count("reinstated") == 1
    assert assert_ledger_balanced(owner) == 6000


@pytest.mark.parametrize("outcome", ["lost", "warning_closed", "under_review"])
def test_a_dispute_not_won_keeps_its_credits_taken_back(
    owner, fake_stripe, deliver, bought, disputed, outcome
):
    closed = fake_stripe.event(
        "charge.dispute.closed", fake_stripe.close_dispute(disputed["id"], outcome)
    )

    assert deliver_ok(deliver, closed) == "processed"

    assert purchase_state(bought) == ("disputed", 0, 500, 5000)
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000), ("reversal", -5000)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_won_dispute_pays_first_the_debt_its_creation_left(
    client, owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    spend(owner, 4800)  # 6000 -> 1200
    lifetime = CreditAccount.objects.get(owner__personal_owner=owner).lifetime_credits
    dispute = fake_stripe.dispute(bought.checkout_session_id)
    deliver_ok(deliver, fake_stripe.event("charge.dispute.created", dispute))
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert (account.balance_credits, account.owed_credits) == (0, 3800)

    won = fake_stripe.event(
        "charge.dispute.closed", fake_stripe.close_dispute(dispute["id"], "won")
    )
    deliver_ok(deliver, won)

    account.refresh_from_db()
    assert (account.balance_credits, account.owed_credits) == (1200, 0)
    assert account.lifetime_credits == lifetime
    assert ledger_kinds(owner)[-3:] == [
        ("reversal", -1200),
        ("reinstated", 5000),
        ("debt_payment", -3800),
    ]
    assert list(DebtEntry.objects.order_by("id").values_list("amount_credits", flat=True)) == [
        3800,
        -3800,
    ]
    assert assert_ledger_balanced(owner) == 1200
    assert "owes" not in client.get("/dashboard/billing/").content.decode()


def test_a_won_dispute_that_overtakes_its_creation_takes_nothing(
    owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    dispute = fake_stripe.dispute(bought.checkout_session_id)
    created = fake_stripe.event("charge.dispute.created", dispute)
    closed = fake_stripe.event(
        "charge.dispute.closed", fake_stripe.close_dispute(dispute["id"], "won")
    )

    assert deliver_ok(deliver, closed) == "processed"
    assert deliver_ok(deliver, created) == "processed"

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_a_won_dispute_after_a_partial_refund_gives_back_only_what_it_took(
    owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    refund = fake_stripe.refund(bought.checkout_session_id, 200)
    deliver_ok(deliver, fake_stripe.event("charge.refunded", refund))
    dispute = fake_stripe.dispute(bought.checkout_session_id, amount_cents=300)
    deliver_ok(deliver, fake_stripe.event("charge.dispute.created", dispute))
    assert assert_ledger_balanced(owner) == 1000

    won = fake_stripe.close_dispute(dispute["id"], "won")
    deliver_ok(deliver, fake_stripe.event("charge.dispute.closed", won))

    assert purchase_state(bought) == ("partially_refunded", 200, 0, 2000)
    assert ledger_kinds(owner)[-1] == ("reinstated", 3000)
    assert assert_ledger_balanced(owner) == 4000


def test_a_won_dispute_of_another_integration_is_ignored(owner, fake_stripe, deliver):
    dispute = {
        "id": "dp_other",
        "object": "dispute",
        "amount": 500,
        "charge": "ch_other",
        "payment_intent": "pi_other",
        "status": "won",
        "livemode": False,
    }

    assert deliver_ok(deliver, fake_stripe.event("charge.dispute.closed", dispute)) == "ignored"

    assert assert_ledger_balanced(owner) == 1000


# --- Failed refunds -------------------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["failed-taken-out", "failed-kept-in-total"])
def either_stripe(request, fake_stripe):
    """Stripe's charge either takes a failed refund out of amount_refunded or keeps it in: the
    product must be right both ways."""
    fake_stripe.failed_refunds_stay_in_amount_refunded = request.param
    return fake_stripe


def refund(fake_stripe, deliver, purchase, cents, *, refund_created=True):
    """Refund ``cents``, delivering charge.refunded and (unless told not) refund.created."""
    charge = fake_stripe.refund(purchase.checkout_session_id, cents)
    made = fake_stripe.latest_refund(purchase.checkout_session_id)
    deliver_ok(deliver, fake_stripe.event("charge.refunded", charge))
    if refund_created:
        deliver_ok(deliver, fake_stripe.event("refund.created", made))
    return made


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("refund.failed", "failed"),
        ("refund.updated", "failed"),
        ("charge.refund.updated", "failed"),
        ("refund.updated", "canceled"),
    ],
)
def test_a_failed_refund_gives_its_credits_back(
    client, owner, either_stripe, deliver, bought, event_type, status
):
    paid(either_stripe, deliver, bought)
    made = refund(either_stripe, deliver, bought, 500)
    assert purchase_state(bought) == ("refunded", 500, 0, 5000)
    assert assert_ledger_balanced(owner) == 1000

    failure = either_stripe.event(event_type, either_stripe.fail_refund(made["id"], status))
    assert deliver_ok(deliver, failure) == "processed"

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert ledger_rows(owner, f"purchase:{bought.public_id}") == [
        ("top_up", 5000, 6000),
        ("reversal", -5000, 1000),
        ("reinstated", 5000, 6000),
    ]
    assert LedgerEntry.objects.get(kind="reinstated").description == (
        "Payment of $5.00 reinstated (a refund failed): 5000 credits given back"
    )
    assert assert_ledger_balanced(owner) == 6000
    assert (
        '<span class="badge success">Paid</span>'
        in client.get("/dashboard/billing/").content.decode()
    )


def test_a_failed_refund_gives_back_once_however_often_it_is_told(
    owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    made = refund(fake_stripe, deliver, bought, 500)
    failed = fake_stripe.fail_refund(made["id"])
    events = [
        fake_stripe.event(event_type, failed)
        for event_type in ("refund.failed", "refund.updated", "charge.refund.updated")
    ]

    for event in [*events, *events]:
        deliver_ok(deliver, event)
    # A late snapshot of the refund from before it failed changes nothing either.
    deliver_ok(deliver, fake_stripe.event("refund.updated", dict(failed, status="succeeded")))

    assert ledger_kinds(owner) == [
        ("grant", 1000),
        ("top_up", 5000),
        ("reversal", -5000),
        ("reinstated", 5000),
    ]
    assert assert_ledger_balanced(owner) == 6000


def test_a_charge_event_from_before_the_failure_takes_nothing_again(
    owner, either_stripe, deliver, bought
):
    paid(either_stripe, deliver, bought)
    charge_then = either_stripe.refund(bought.checkout_session_id, 500)
    made = either_stripe.latest_refund(bought.checkout_session_id)
    deliver_ok(deliver, either_stripe.event("charge.refunded", charge_then))
    deliver_ok(deliver, either_stripe.event("refund.failed", either_stripe.fail_refund(made["id"])))

    # Stripe delivers events in no promised order: an older charge.refunded arrives now.
    deliver_ok(deliver, either_stripe.event("charge.refunded", charge_then))

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert assert_ledger_balanced(owner) == 6000


def test_a_refund_that_failed_before_anything_was_taken_takes_nothing(
    owner, either_stripe, deliver, bought
):
    paid(either_stripe, deliver, bought)
    charge_then = either_stripe.refund(bought.checkout_session_id, 500)
    made = either_stripe.latest_refund(bought.checkout_session_id)
    failed = either_stripe.event("refund.failed", either_stripe.fail_refund(made["id"]))

    for event in (failed, either_stripe.event("charge.refunded", charge_then)):
        deliver_ok(deliver, event)

    assert ledger_kinds(owner) == [("grant", 1000), ("top_up", 5000)]
    assert assert_ledger_balanced(owner) == 6000


def test_a_refund_after_a_failed_one_is_taken_back_right(owner, either_stripe, deliver, bought):
    paid(either_stripe, deliver, bought)
    first = refund(either_stripe, deliver, bought, 200)
    assert assert_ledger_balanced(owner) == 4000
    deliver_ok(
        deliver, either_stripe.event("refund.failed", either_stripe.fail_refund(first["id"]))
    )
    assert assert_ledger_balanced(owner) == 6000

    # The same amount again (the running total comes back to a figure it had before).
    refund(either_stripe, deliver, bought, 200)

    assert purchase_state(bought) == ("partially_refunded", 200, 0, 2000)
    assert ledger_kinds(owner)[1:] == [
        ("top_up", 5000),
        ("reversal", -2000),
        ("reinstated", 2000),
        ("reversal", -2000),
    ]
    assert assert_ledger_balanced(owner) == 4000


def test_a_failed_refund_among_others_gives_back_only_its_share(
    owner, either_stripe, deliver, bought
):
    paid(either_stripe, deliver, bought)
    refund(either_stripe, deliver, bought, 150)
    second = refund(either_stripe, deliver, bought, 100)
    assert assert_ledger_balanced(owner) == 3500

    deliver_ok(
        deliver, either_stripe.event("refund.failed", either_stripe.fail_refund(second["id"]))
    )
    assert ledger_kinds(owner)[-1] == ("reinstated", 1000)
    assert assert_ledger_balanced(owner) == 4500
    refund(either_stripe, deliver, bought, 250)

    # 150 + 250 refunded (the 100 failed): 4000 of the 5000 credits taken back in all.
    assert purchase_state(bought) == ("partially_refunded", 400, 0, 4000)
    assert assert_ledger_balanced(owner) == 2000


def test_a_refund_known_only_from_its_own_event_is_taken_back(owner, fake_stripe, deliver, bought):
    # An endpoint that receives refund.created before (or without) charge.refunded.
    paid(fake_stripe, deliver, bought)
    fake_stripe.refund(bought.checkout_session_id, 250)
    made = fake_stripe.latest_refund(bought.checkout_session_id)

    assert deliver_ok(deliver, fake_stripe.event("refund.created", made)) == "processed"

    assert purchase_state(bought) == ("partially_refunded", 250, 0, 2500)
    assert assert_ledger_balanced(owner) == 3500


def test_a_charge_that_lists_its_refunds_records_them(owner, fake_stripe, deliver, bought):
    # Older API versions put the refunds in charge.refunded: a failure later needs no other news.
    paid(fake_stripe, deliver, bought)
    charge = fake_stripe.refund(bought.checkout_session_id, 500)
    made = fake_stripe.latest_refund(bought.checkout_session_id)
    charge["refunds"] = {"object": "list", "data": [made], "has_more": False}
    deliver_ok(deliver, fake_stripe.event("charge.refunded", charge))

    deliver_ok(deliver, fake_stripe.event("refund.failed", fake_stripe.fail_refund(made["id"])))

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert assert_ledger_balanced(owner) == 6000


def test_a_failed_refund_pays_first_the_debt_its_refund_left(owner, fake_stripe, deliver, bought):
    paid(fake_stripe, deliver, bought)
    spend(owner, 5500)  # 6000 -> 500
    made = refund(fake_stripe, deliver, bought, 500)
    account = CreditAccount.objects.get(owner__personal_owner=owner)
    assert (account.balance_credits, account.owed_credits) == (0, 4500)

    deliver_ok(deliver, fake_stripe.event("refund.failed", fake_stripe.fail_refund(made["id"])))

    account.refresh_from_db()
    assert (account.balance_credits, account.owed_credits) == (500, 0)
    assert assert_ledger_balanced(owner) == 500


def test_a_refund_event_of_another_integration_is_ignored(owner, fake_stripe, deliver):
    other = {
        "id": "re_other",
        "object": "refund",
        "amount": 500,
        "charge": "ch_other",
        "payment_intent": "pi_other",
        "status": "failed",
    }

    assert deliver_ok(deliver, fake_stripe.event("refund.failed", other)) == "ignored"

    assert StripeEvent.objects.get().error.startswith("No purchase")
    assert not Purchase.objects.exists()
    assert assert_ledger_balanced(owner) == 1000


# --- Purchases recorded before refunds were kept by id ------------------------------------


def as_recorded_before(purchase):
    """What the purchase row held before this version: no refund rows, no charge total of its
    own (refunded_cents was it), no dispute id."""
    purchase.refunds.all().delete()
    Purchase.objects.filter(pk=purchase.pk).update(charge_refunded_cents=0, dispute_id="")


def test_a_purchase_refunded_before_the_upgrade_keeps_its_credits_taken_back(
    owner, fake_stripe, deliver, bought
):
    paid(fake_stripe, deliver, bought)
    deliver_ok(
        deliver,
        fake_stripe.event("charge.refunded", fake_stripe.refund(bought.checkout_session_id, 200)),
    )
    as_recorded_before(bought)
    migration = importlib.import_module("billing.migrations.0009_backfill_charge_refunded")

    migration.backfill_charge_refunded(apps, None)
    # Any later event of the purchase recomputes what is taken back: it must find the same.
    dispute = fake_stripe.dispute(bought.checkout_session_id, amount_cents=100)
    deliver_ok(deliver, fake_stripe.event("charge.dispute.created", dispute))

    assert purchase_state(bought) == ("disputed", 200, 100, 3000)
    assert ledger_kinds(owner)[2:] == [("reversal", -2000), ("reversal", -1000)]
    assert assert_ledger_balanced(owner) == 3000


def test_a_dispute_recorded_before_the_upgrade_gives_its_credits_back_when_won(
    owner, fake_stripe, deliver, bought, disputed
):
    as_recorded_before(bought)

    won = fake_stripe.close_dispute(disputed["id"], "won")
    deliver_ok(deliver, fake_stripe.event("charge.dispute.closed", won))

    assert purchase_state(bought) == ("paid", 0, 0, 0)
    assert assert_ledger_balanced(owner) == 6000
