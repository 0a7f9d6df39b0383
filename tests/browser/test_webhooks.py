"""The Webhooks pages in Chromium, on a desktop and on a phone: adding an endpoint shows its
secret once in a dialog, the endpoint's page lists each message with every attempt, axe finds
nothing, and a test event sent from the page reaches a receiver through a real worker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from accounts.models import User
from tests.browser.support import (
    DESKTOP,
    PHONE,
    axe_violations,
    load,
    settle,
    sign_in_as,
    verified_customer,
)
from tests.webhooks.receiver import receiving
from webhooks import events, services
from webhooks.models import Attempt, Endpoint, Message

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


def webhook_history(user: User) -> Endpoint:
    """An endpoint with a message delivered at the third attempt, one waiting for its retry and
    a test event not tried yet."""
    endpoint = services.create_endpoint(
        user.personal_account,
        "https://hooks.example.com/seedream/webhooks/receive",
        list(events.EVENT_TYPES),
        "production receiver",
    ).endpoint
    now = timezone.now()
    # The rows as a worker leaves them.
    answers = [
        (500, "", '{"error": "database is restarting"}'),
        (503, "", "<html><body><h1>503 Service Unavailable</h1></body></html>"),
        (200, "", '{"ok": true}'),
    ]
    message = _message(endpoint, events.IMAGE_GENERATION_COMPLETED, "gen_1", now)
    for number, (status, error, answer) in enumerate(answers, start=1):
        Attempt.objects.create(
            message=message, number=number, started_at=now + timedelta(minutes=number),
            status_code=status, error=error, duration_ms=40 * number, response_excerpt=answer,
        )  # fmt: skip
    Message.objects.filter(pk=message.pk).update(
        status="succeeded", attempts=3, next_attempt_at=None, delivered_at=now
    )
    waiting = _message(endpoint, events.IMAGE_GENERATION_FAILED, "gen_2", now)
    Attempt.objects.create(
        message=waiting, number=1, started_at=now, error="No answer within 15 seconds.",
        duration_ms=15000,
    )  # fmt: skip
    Message.objects.filter(pk=waiting.pk).update(
        attempts=1, next_attempt_at=now + timedelta(seconds=5)
    )
    services.send_test_event(endpoint)
    return endpoint


def _message(endpoint: Endpoint, event_type: str, job: str, now: Any) -> Message:
    from webhooks.services import _new_event, _new_message

    event = _new_event(endpoint.account, event_type, {"id": job, "status": "x"}, key=job)
    return _new_message(event, endpoint)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_customer_adds_an_endpoint_and_reads_its_deliveries(
    live_server: Any, page: Page, console_errors: list[str],
    screenshot: Callable[[Page, str], Path], viewport: ViewportSize,
) -> None:  # fmt: skip
    phone = viewport is PHONE
    device = "phone" if phone else "desktop"
    customer = verified_customer(f"hooks-{device}@example.com")
    history = webhook_history(customer)
    sign_in_as(page, live_server.url, customer)
    page.set_viewport_size(viewport)
    found: list[str] = []

    load(page, f"{live_server.url}/dashboard/webhooks/", console_errors, phone=phone)
    found += axe_violations(page, "webhooks")
    add = page.get_by_role("region", name="Add an endpoint")
    add.get_by_label("Endpoint URL").fill("https://hooks.example.org/seedream")
    add.get_by_label("image.generation.completed").check()
    add.get_by_role("button", name="Add endpoint").click()
    dialog = page.locator("dialog#new-secret")
    expect(dialog).to_be_visible()
    secret = page.locator("#new-secret-value").input_value()
    assert secret.startswith("whsec_")
    settle(page, console_errors, phone=phone)
    found += axe_violations(page, "webhooks, the new secret's dialog open")
    screenshot(page, f"webhooks-new-secret-{device}")
    dialog.get_by_role("button", name="I have stored it").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#endpoints-title")).to_be_focused()
    table = page.get_by_role("region", name="Table of your webhook endpoints")
    expect(table.get_by_text("https://hooks.example.org/seedream")).to_be_visible()
    screenshot(page, f"webhooks-list-{device}")
    # Shown in the response to the POST that made it, never again.
    load(page, f"{live_server.url}/dashboard/webhooks/", console_errors, phone=phone)
    assert secret not in page.content()

    load(page, f"{live_server.url}/dashboard/webhooks/{history.pk}/", console_errors, phone=phone)
    found += axe_violations(page, "webhook endpoint")
    webhook_id = history.messages.get(status="succeeded").webhook_id
    delivered = page.get_by_role("region", name=f"Attempts of {webhook_id}")
    expect(delivered.locator("tbody tr")).to_have_count(3)
    expect(delivered).to_contain_text("HTTP 500")
    expect(delivered).to_contain_text("HTTP 200")
    screenshot(page, f"webhook-endpoint-{device}")

    # Bad input comes back as a form error, on the form, focusable.
    load(page, f"{live_server.url}/dashboard/webhooks/", console_errors, phone=phone)
    add = page.get_by_role("region", name="Add an endpoint")
    add.get_by_label("Endpoint URL").fill("https://user:pw@hooks.example.org/x")
    add.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("alert").first).to_contain_text("must not contain a user name")
    settle(page, console_errors, phone=phone)
    found += axe_violations(page, "webhooks, sent with errors")
    screenshot(page, f"webhooks-form-errors-{device}")

    assert not found, "\n".join(found)


def test_a_test_event_sent_from_the_page_reaches_the_receiver(
    live_server: Any, page: Page, console_errors: list[str], worker: None,
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    customer = verified_customer("hooks-live@example.com")
    sign_in_as(page, live_server.url, customer)
    with receiving() as receiver:
        endpoint = services.create_endpoint(
            customer.personal_account, receiver.url, [events.IMAGE_GENERATION_COMPLETED]
        ).endpoint
        load(page, f"{live_server.url}/dashboard/webhooks/{endpoint.pk}/", console_errors)
        page.get_by_role("button", name="Send test event").click()
        expect(page.get_by_role("status").first).to_contain_text("A test event is on its way")
        for _ in range(100):  # the worker delivers it on its own time
            if Message.objects.filter(status="succeeded").exists():
                break
            page.wait_for_timeout(100)
        page.reload()
        settle(page, console_errors)
        expect(page.locator("table.attempts")).to_contain_text("HTTP 200")
        screenshot(page, "webhook-test-event-delivered")
    [request] = receiver.requests
    assert request.headers["webhook-id"] == Message.objects.get().webhook_id
