"""Stripe, offline: the tests' fake of Stripe's API, and webhooks signed with the real scheme."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from billing.models import Purchase
from tests.support.fake_stripe import FakeStripe, running_fake_stripe, sign

WEBHOOK_SECRET = "whsec_test_secret"
SECRET_KEY = "sk_test_fake"
WEBHOOK_URL = "/stripe/webhook/"


@pytest.fixture(autouse=True)
def _fresh_attempt_counters() -> None:
    # Promotion-code attempts are counted per account and address in the cache, which outlives
    # a test.
    cache.clear()


@pytest.fixture(autouse=True)
def _no_real_stripe(settings: Any) -> None:
    """Whatever the environment says, these tests never reach Stripe: card payments are off
    unless a test asks for the fake."""
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def _fake_stripe_server() -> Iterator[FakeStripe]:
    with running_fake_stripe() as fake:
        yield fake


@pytest.fixture
def fake_stripe(
    _fake_stripe_server: FakeStripe, _no_real_stripe: None, settings: Any
) -> FakeStripe:
    """Card payments configured, against a fake Stripe emptied for this test."""
    _fake_stripe_server.reset()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = _fake_stripe_server.base_url
    settings.STRIPE_CURRENCY = "usd"
    settings.STRIPE_PACKS_CENTS = [500, 2000, 5000, 10000]
    settings.STRIPE_MIN_CENTS = 500
    settings.STRIPE_MAX_CENTS = 50_000
    return _fake_stripe_server


def signed_post(
    client: Client,
    event: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
) -> Any:
    """POST an event to the webhook as Stripe would; ``signature`` replaces the real one."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    header = sign(body, secret, timestamp) if signature is None else signature
    headers = {"Stripe-Signature": header} if header else {}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)


@pytest.fixture
def deliver(fake_stripe: FakeStripe) -> Callable[..., Any]:
    """``deliver(event)`` posts a signed event with a fresh client (no session, no CSRF token,
    as from Stripe's servers) and returns the response."""

    def post(event: dict[str, Any] | bytes, **kwargs: Any) -> Any:
        return signed_post(Client(enforce_csrf_checks=True), event, **kwargs)

    return post


@pytest.fixture
def bought(client: Client, owner: Any, fake_stripe: FakeStripe) -> Purchase:
    """The owner (1000 credits) has started a $5.00 purchase (5000 credits)."""
    client.force_login(owner)
    assert client.post("/dashboard/billing/buy/", {"pack": "500"}).status_code == 303
    return Purchase.objects.get()


def completed(fake_stripe: FakeStripe, purchase: Purchase, **kwargs: Any) -> dict[str, Any]:
    """The customer pays: the ``checkout.session.completed`` event Stripe would send."""
    assert purchase.checkout_session_id
    return fake_stripe.event(
        "checkout.session.completed", fake_stripe.pay(purchase.checkout_session_id, **kwargs)
    )


def paid(fake_stripe: FakeStripe, deliver: Callable[..., Any], purchase: Purchase) -> Purchase:
    """The purchase paid and credited through the webhook."""
    assert deliver(completed(fake_stripe, purchase)).status_code == 200
    purchase.refresh_from_db()
    return purchase
