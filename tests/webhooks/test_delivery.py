"""services.deliver with a real receiver on loopback: signing, the retry schedule, claims, the
attempt log, disabling after a day of failures, the sweep. The Celery task is not needed here
(tests/webhooks/test_with_a_worker.py runs it in a real worker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import openai
import pytest
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tests.support.concurrency import run_at_once
from webhooks import events, services
from webhooks.models import Attempt, Endpoint, Event, Message

COMPLETED = events.IMAGE_GENERATION_COMPLETED
SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]
# Past an hourly retry, however long the attempt took.
HOUR_AND_A_BIT = timedelta(seconds=3601)


@pytest.fixture
def published(
    owner: Any, receiver: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> tuple[services.IssuedSecret, Message]:  # fmt: skip
    issued = endpoint_factory(owner, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(
            owner.personal_account, COMPLETED, {"id": "gen_1", "status": "completed"}, event_key="k"
        )
    sent.clear()
    return issued, Message.objects.get()


def later(seconds: float) -> Any:
    return timezone.now() + timedelta(seconds=seconds)


def test_a_delivery_is_signed_and_verifies_with_the_openai_sdk(
    published: Any, receiver: Any
) -> None:
    issued, message = published
    assert services.deliver(message.pk) == "succeeded"

    [request] = receiver.requests
    assert request.headers["webhook-id"] == message.webhook_id
    assert request.headers["Content-Type"] == "application/json"
    event = openai.OpenAI(api_key="x", webhook_secret=issued.secret).webhooks.unwrap(
        request.body, request.headers
    )
    assert (event.type, event.data.id) == (COMPLETED, "gen_1")  # type: ignore[union-attr]
    assert Webhook(issued.secret).verify(request.body, request.headers)["object"] == "event"
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at) == ("succeeded", 1, None)
    [attempt] = message.attempt_log.all()
    assert (attempt.status_code, attempt.error, attempt.response_excerpt) == (
        200, "", '{"received": true}',
    )  # fmt: skip


def test_failures_are_retried_on_the_schedule_with_the_same_webhook_id(
    published: Any, receiver: Any, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    issued, message = published
    receiver.statuses = [500, 503]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliver(message.pk) == "retry"
    message.refresh_from_db()
    assert message.status == "pending"
    assert message.next_attempt_at > later(SCHEDULE[0] - 1)
    assert sent == [(message.pk, SCHEDULE[0])]  # a short wait: queued with a countdown

    # Not due yet: a task that arrives early does nothing.
    assert services.deliver(message.pk) == "skipped"
    second = later(SCHEDULE[0] + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliver(message.pk, now=second) == "retry"
    message.refresh_from_db()
    assert message.next_attempt_at >= second + timedelta(seconds=SCHEDULE[1])
    assert sent == [(message.pk, SCHEDULE[0]), (message.pk, SCHEDULE[1])]
    third = second + timedelta(seconds=SCHEDULE[1] + 1)
    assert services.deliver(message.pk, now=third) == "succeeded"

    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {message.webhook_id}
    assert len({r.body for r in receiver.requests}) == 1  # the same body every time
    for request in receiver.requests:  # each signed afresh, each verifies
        Webhook(issued.secret).verify(request.body, request.headers)
    assert [(a.number, a.status_code) for a in Attempt.objects.order_by("number")] == [
        (1, 500), (2, 503), (3, 200),
    ]  # fmt: skip


def test_a_retry_beyond_the_countdown_limit_waits_for_the_sweep(
    published: Any, receiver: Any, sent: list[Any], django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:  # fmt: skip
    _, message = published
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [3600]
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliver(message.pk) == "retry"
    assert sent == []
    assert services.sweep(now=later(3599)) == 0
    assert services.sweep(now=later(3601)) == 1
    assert sent == [(message.pk, 0)]


def test_the_last_attempt_failing_fails_the_message(
    published: Any, receiver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _, message = published
    receiver.statuses = [500] * 8
    now = timezone.now()
    outcomes = []
    for step in [0, *SCHEDULE]:
        now += timedelta(seconds=step + 1)
        with django_capture_on_commit_callbacks(execute=True):
            outcomes.append(services.deliver(message.pk, now=now))
    assert outcomes == ["retry"] * 7 + ["failed"]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at) == ("failed", 8, None)
    assert len(receiver.requests) == 8


def test_a_day_of_failures_disables_the_endpoint_and_emails_its_owner(
    published: Any, receiver: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    issued, message = published
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [3600] * 30
    Message.objects.filter(pk=message.pk).update(max_attempts=31)
    receiver.statuses = [500] * 30
    waiting = services.send_test_event(issued.endpoint)  # another message, still due later
    Message.objects.filter(pk=waiting.pk).update(next_attempt_at=later(10 * 86400))
    now = timezone.now()
    for hour in range(24):
        with django_capture_on_commit_callbacks(execute=True):
            assert services.deliver(message.pk, now=now + hour * HOUR_AND_A_BIT) == "retry"
    endpoint = Endpoint.objects.get()
    assert endpoint.enabled and mail.outbox == []
    # The 25th attempt comes a day and a bit after the first failure.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliver(message.pk, now=now + 24 * HOUR_AND_A_BIT) == "retry"
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "failing")
    assert Message.objects.get(pk=waiting.pk).status == "failed"
    assert services.deliver(message.pk, now=now + 26 * HOUR_AND_A_BIT) == "skipped"
    message.refresh_from_db()
    assert message.status == "failed"
    [email] = mail.outbox
    assert email.to == endpoint.account.contact_emails() == ["owner@example.com"]
    assert "Webhook endpoint disabled" in email.subject
    assert endpoint.url in email.body and f"/dashboard/webhooks/{endpoint.pk}/" in email.body


def test_a_success_ends_a_run_of_failures(
    published: Any, receiver: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _, message = published
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [3600] * 30
    Message.objects.filter(pk=message.pk).update(max_attempts=31)
    receiver.statuses = [500] * 20 + [200]
    now = timezone.now()
    for hour in range(21):
        with django_capture_on_commit_callbacks(execute=True):
            services.deliver(message.pk, now=now + hour * HOUR_AND_A_BIT)
    assert Endpoint.objects.get().failing_since is None
    assert Message.objects.get().status == "succeeded"


def test_two_workers_never_send_the_same_attempt(
    published: Any, receiver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _, message = published
    # The loser's claim: it read the row before the winner claimed it.
    stale = Message.objects.get(pk=message.pk)
    assert services.deliver(message.pk) == "succeeded"
    claimed = Message.objects.filter(
        pk=stale.pk, status=stale.status, attempts=stale.attempts
    ).update(attempts=stale.attempts + 1)
    assert claimed == 0
    assert services.deliver(message.pk) == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_message_send_it_once(
    owner: Any, receiver: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    default_prices: None,
) -> None:  # fmt: skip
    endpoint = endpoint_factory(owner, receiver.url).endpoint
    message = services.send_test_event(endpoint)
    results = run_at_once(4, lambda i: services.deliver(message.pk))

    assert sorted(results) == ["skipped"] * 3 + ["succeeded"]
    assert len(receiver.requests) == 1


def test_a_lapsed_claim_is_due_again_and_its_lost_attempt_logged(
    published: Any, receiver: Any, settings: Any
) -> None:
    _, message = published
    lease = settings.WEBHOOK_TIMEOUT_SECONDS + services.CLAIM_MARGIN_SECONDS
    # A worker claimed it, then died before reporting.
    Message.objects.filter(pk=message.pk).update(
        status="sending", attempts=1, next_attempt_at=later(lease), last_attempt_at=timezone.now()
    )
    assert services.sweep() == 0
    assert services.deliver(message.pk) == "skipped"  # still leased
    assert services.sweep(now=later(lease + 1)) == 1
    assert services.deliver(message.pk, now=later(lease + 1)) == "succeeded"
    log = Attempt.objects.order_by("number").values_list("number", "status_code", "error")
    assert list(log) == [
        (1, None, "No outcome was recorded: the worker sending it stopped."),
        (2, 200, ""),
    ]


def test_resend_sends_once_more_with_the_same_webhook_id(
    published: Any, receiver: Any, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    _, message = published
    services.deliver(message.pk)
    message.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.resend(message)
    assert sent == [(message.pk, 0)]
    receiver.statuses = [500]
    assert services.deliver(message.pk) == "failed"  # a resend is one attempt, not a schedule
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message.webhook_id] * 2
    message.refresh_from_db()
    assert (message.status, message.attempts, message.max_attempts) == ("failed", 2, 2)


def test_a_disabled_endpoint_gets_nothing_and_cannot_be_resent_to(
    published: Any, receiver: Any
) -> None:
    issued, message = published
    services.disable_endpoint(issued.endpoint)
    assert services.deliver(message.pk) == "skipped"
    message.refresh_from_db()
    assert message.status == "failed"
    with pytest.raises(services.Refusal, match="Enable the endpoint"):
        services.resend(message)
    with pytest.raises(services.Refusal, match="Enable the endpoint"):
        services.send_test_event(issued.endpoint)
    assert receiver.requests == []


def test_after_a_rotation_both_secrets_verify_for_a_day(published: Any, receiver: Any) -> None:
    issued, message = published
    rotated = services.rotate_secret(issued.endpoint)
    assert rotated.secret != issued.secret
    services.deliver(message.pk)
    [request] = receiver.requests
    for secret in (issued.secret, rotated.secret):
        Webhook(secret).verify(request.body, request.headers)
    assert services.endpoint_secrets(rotated.endpoint, now=later(86401)) == [rotated.secret]


def test_the_sweep_prunes_old_events_that_nothing_waits_on(
    published: Any, receiver: Any, settings: Any
) -> None:
    _, message = published
    services.deliver(message.pk)
    assert services.sweep(now=later(settings.WEBHOOK_RETENTION_DAYS * 86400 - 60)) == 0
    assert Event.objects.count() == 1
    services.sweep(now=later(settings.WEBHOOK_RETENTION_DAYS * 86400 + 60))
    assert (Event.objects.count(), Message.objects.count(), Attempt.objects.count()) == (0, 0, 0)


def test_the_payload_is_sent_byte_for_byte(published: Any, receiver: Any) -> None:
    _, message = published
    services.deliver(message.pk)
    assert receiver.requests[0].body == message.event.payload.encode()
    assert json.loads(receiver.requests[0].body)["data"] == {"id": "gen_1", "status": "completed"}
