"""services.publish: what the generation calls. One message per enabled endpoint subscribed to
the type, in the caller's transaction, queued when it commits; the same key again does
nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from webhooks import events, services
from webhooks.models import Endpoint, Event, Message

COMPLETED = events.IMAGE_GENERATION_COMPLETED
DATA = {"id": "gen_123", "status": "completed"}


def test_it_records_a_message_for_each_enabled_subscribed_endpoint(
    owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    wants = endpoint_factory(owner, event_types=[COMPLETED]).endpoint
    also = endpoint_factory(owner, "https://two.example.com/h").endpoint
    endpoint_factory(owner, "https://other.example.com/h", [events.IMAGE_GENERATION_FAILED])
    disabled = endpoint_factory(owner, "https://off.example.com/h").endpoint
    services.disable_endpoint(disabled)

    with django_capture_on_commit_callbacks(execute=True):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")

    messages = Message.objects.order_by("endpoint_id")
    assert [m.endpoint_id for m in messages] == [wants.pk, also.pk]
    assert sorted(sent) == sorted((m.pk, 0) for m in messages)
    assert {m.status for m in messages} == {"pending"}
    assert len({m.webhook_id for m in messages}) == 2
    event = Event.objects.get()
    body = json.loads(event.payload)
    assert body == {
        "object": "event",
        "id": event.public_id,
        "type": COMPLETED,
        "created_at": int(event.created_at.timestamp()),
        "data": DATA,
    }
    assert body["id"].startswith("evt_")


def test_publishing_the_same_key_again_does_nothing(
    owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint_factory(owner)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
            # A repeat inside the same transaction leaves the caller's transaction usable.
            services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
            Event.objects.count()
        services.publish(
            owner.personal_account, COMPLETED, {**DATA, "more": 1}, event_key="gen_123"
        )
    assert Message.objects.count() == 1
    assert len(sent) == 1
    # Another type, or another key, is another event.
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(
            owner.personal_account, events.IMAGE_GENERATION_FAILED, DATA, event_key="gen_123"
        )
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_124")
    assert Message.objects.count() == 3


def test_nothing_is_recorded_or_queued_when_the_caller_rolls_back(
    owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint_factory(owner)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
        raise RuntimeError("the generation's own transaction failed")
    assert (Event.objects.count(), Message.objects.count(), sent) == (0, 0, [])


def test_an_account_without_endpoints_costs_one_query_and_records_nothing(
    owner: Any, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
    assert Event.objects.count() == 0


def test_another_accounts_endpoints_get_nothing(
    owner: Any, outsider: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint_factory(outsider)
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
    assert (Message.objects.count(), sent) == (0, [])


def test_an_unknown_event_type_is_a_programming_error(owner: Any) -> None:
    with pytest.raises(ValueError, match=r"invoice\.paid"):
        services.publish(owner.personal_account, "invoice.paid", {}, event_key="x")


def test_a_broker_that_cannot_be_reached_does_not_reach_the_publisher(
    owner: Any, endpoint_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from webhooks import tasks

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver, "apply_async", unreachable)
    endpoint_factory(owner)
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="gen_123")
    message = Message.objects.get()
    assert message.status == "pending"  # the sweep sends it
    assert "could not send webhook message" in caplog.text


def test_closing_the_account_disables_its_endpoints(
    owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    from accounts.services import close_account

    endpoint_factory(owner)
    close_account(owner)
    endpoint = Endpoint.objects.get()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "account_closed")
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(owner.personal_account, COMPLETED, DATA, event_key="after")
    assert (Message.objects.count(), sent) == (0, [])
