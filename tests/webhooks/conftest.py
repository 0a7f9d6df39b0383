"""What the webhook tests share: a receiver on loopback (tests/webhooks/receiver.py), an endpoint
factory, a public site's settings, and a record of the deliveries queued."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accounts.models import User
from tests.webhooks.receiver import Receiver, receiving
from webhooks import events, services


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver at http://127.0.0.1:<port>/hooks."""
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def endpoint_factory(db: None) -> Callable[..., services.IssuedSecret]:
    def make(
        user: User,
        url: str = "https://hooks.example.com/seedream",
        event_types: list[str] | None = None,
    ) -> services.IssuedSecret:
        return services.create_endpoint(
            user.personal_account,
            url,
            event_types if event_types is not None else list(events.EVENT_TYPES),
        )

    return make


@pytest.fixture
def production(settings: Any) -> Any:
    """A public site's rules: https only, public addresses only."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    return settings


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Deliveries queued for the workers, as (message id, countdown), instead of a broker."""
    queued: list[tuple[int, int]] = []

    def record(message_ids: list[int], countdown: int = 0) -> None:
        queued.extend((message_id, countdown) for message_id in message_ids)

    monkeypatch.setattr("webhooks.tasks.send_deliveries", record)
    return queued
