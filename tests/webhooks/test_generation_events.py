"""Each finished generation is announced to its owner's endpoints (generation/services/
announce.py): image.generation.completed, .failed or .cancelled, once, with the job's id and
status; an owner without endpoints costs one query and records nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation import tasks as generation_tasks
from generation.models import Generation
from generation.services import announce, jobs
from webhooks import events
from webhooks.models import Event, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The generation runs handed to the broker (the broker itself is not needed here)."""
    handed: list[int] = []
    monkeypatch.setattr(
        generation_tasks, "send_generation", lambda pk, countdown=0: handed.append(pk)
    )
    return handed


def generate(client: Any, key: str, prompt: str, **headers: str) -> Any:
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": f"{prompt} {uuid.uuid4().hex}"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **headers},
    )


def announced(user: Any) -> list[dict[str, Any]]:
    return [
        json.loads(event.payload)
        for event in Event.objects.filter(account=user.personal_account).order_by("pk")
    ]


def test_a_completed_generation_is_announced_once_with_its_job(
    client: Any, owner: Any, owner_key: str, endpoint_factory: Callable[..., Any],
    sent: list[Any], django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint = endpoint_factory(owner).endpoint

    with django_capture_on_commit_callbacks(execute=True):
        answer = generate(client, owner_key, "a kite").json()

    [body] = announced(owner)
    assert body["type"] == events.IMAGE_GENERATION_COMPLETED
    assert body["data"] == {
        "id": answer["id"],
        "object": "image.generation",
        "status": "completed",
        "model": "seedream-4-0",
        "images_delivered": 1,
        "credits_charged": answer["credits_charged"],
    }
    [message] = Message.objects.all()
    assert message.endpoint == endpoint
    assert sent == [(message.pk, 0)]
    # Announcing it again (a settlement retried) records nothing more.
    generation = Generation.objects.get(public_id=answer["id"])
    announce.announce_finished(generation.pk, owner.pk)
    assert Event.objects.count() == Message.objects.count() == 1


def test_a_failed_generation_is_announced_as_failed(
    client: Any, owner: Any, owner_key: str, endpoint_factory: Callable[..., Any],
    sent: list[Any],
) -> None:  # fmt: skip
    endpoint_factory(owner)

    response = generate(client, owner_key, "[sim:block-prompt] a kite")

    assert response.status_code == 400
    [body] = announced(owner)
    assert body["type"] == events.IMAGE_GENERATION_FAILED
    assert body["data"]["status"] == "failed"
    assert body["data"]["credits_charged"] == 0


def test_a_cancelled_job_is_announced_as_cancelled(
    client: Any, owner: Any, owner_key: str, endpoint_factory: Callable[..., Any],
    sent: list[Any], runs: list[int],
) -> None:  # fmt: skip
    endpoint_factory(owner)
    job = generate(client, owner_key, "a kite", Prefer="respond-async").json()
    assert announced(owner) == []  # queued: nothing to say yet

    client.post(
        f"/v1/images/generations/{job['id']}/cancel",
        headers={"Authorization": f"Bearer {owner_key}"},
    )

    [body] = announced(owner)
    assert body["type"] == events.IMAGE_GENERATION_CANCELLED
    assert body["data"]["id"] == job["id"]
    assert body["data"]["status"] == jobs.CANCELLED


def test_an_endpoint_that_did_not_subscribe_to_failures_hears_nothing_of_them(
    client: Any, owner: Any, owner_key: str, endpoint_factory: Callable[..., Any],
    sent: list[Any],
) -> None:  # fmt: skip
    endpoint_factory(owner, event_types=[events.IMAGE_GENERATION_COMPLETED])

    generate(client, owner_key, "[sim:block-prompt] a kite")

    assert Message.objects.count() == 0


def test_an_owner_without_endpoints_costs_one_query(
    client: Any, owner: Any, owner_key: str, outsider: Any,
    endpoint_factory: Callable[..., Any],
) -> None:  # fmt: skip
    endpoint_factory(outsider)  # someone else's endpoint changes nothing for the owner
    answer = generate(client, owner_key, "a kite").json()
    generation = Generation.objects.get(public_id=answer["id"])

    with CaptureQueriesContext(connection) as queries:
        announce.announce_finished(generation.pk, owner.pk)

    assert len(queries) == 1
    assert Event.objects.count() == 0


@pytest.mark.postgres
def test_the_single_statement_settlement_tells_whether_to_announce(
    client: Any, owner: Any, owner_key: str, outsider: Any,
    endpoint_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, sent: list[Any],
) -> None:  # fmt: skip
    # On PostgreSQL the settlement's own statement asks whether the owner has an endpoint, so
    # an owner without one costs no further query at all.
    from generation.services import settle

    asked: list[int] = []
    monkeypatch.setattr(
        settle, "announce_finished", lambda pk, account_id: asked.append(account_id)
    )
    endpoint_factory(outsider)

    generate(client, owner_key, "a kite")
    assert asked == []

    endpoint_factory(owner)
    generate(client, owner_key, "a kite")
    assert asked == [owner.personal_account.pk]
