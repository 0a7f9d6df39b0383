"""Webhooks delivered by a real Celery worker process (``celery -A config worker``, Redis broker)
to a real receiver on loopback, as a customer would see them: verified with the official openai
SDK, retried after 500s with the same webhook-id, every attempt on the endpoint's page; and a
public site's worker refusing a private address.

The retry schedule is shortened to seconds (WEBHOOK_RETRY_SCHEDULE_SECONDS) in the worker.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from tests.support.worker import redis_broker, running_worker
from webhooks import crypto, events, services, tasks
from webhooks.models import Endpoint, Message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

COMPLETED = events.IMAGE_GENERATION_COMPLETED
WAIT_SECONDS = 60


@pytest.fixture
def worker_env(live_server_env: dict[str, str], settings: Any) -> Iterator[dict[str, str]]:
    # The publisher (this process) sets a message's attempts: three here.
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [1, 1]
    env = {
        **live_server_env,
        "WEBHOOK_RETRY_SCHEDULE_SECONDS": "1,1",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    with redis_broker(env) as broker_env:
        yield broker_env


def wait_until(condition: Any, worker: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen:\n{worker.log()}")


def test_a_receiver_failing_twice_gets_the_event_a_third_time_and_verifies_it(
    worker_env: dict[str, str], receiver: Any, owner: Any, client: Any
) -> None:
    client.force_login(owner)
    added = client.post(
        "/dashboard/webhooks/", {"url": receiver.url, "event_types": [COMPLETED]}
    ).content.decode()
    [secret] = set(re.findall(r"whsec_[A-Za-z0-9+/=]{44}", added))
    receiver.statuses = [500, 500]

    with running_worker(worker_env) as worker:
        with transaction.atomic():
            services.publish(
                owner.personal_account,
                COMPLETED,
                {"id": "gen_abc", "status": "completed"},
                event_key="gen_abc",
            )
        wait_until(lambda: Message.objects.filter(status="succeeded").exists(), worker, "delivery")
        log = worker.log()

    assert len(receiver.requests) == 3
    message = Message.objects.get()
    assert {r.headers["webhook-id"] for r in receiver.requests} == {message.webhook_id}
    # Each attempt signed afresh: its own timestamp, its own signature, the same body.
    assert len({r.headers["webhook-timestamp"] for r in receiver.requests}) == 3
    assert len({r.headers["webhook-signature"] for r in receiver.requests}) == 3
    assert len({r.body for r in receiver.requests}) == 1
    sdk = openai.OpenAI(api_key="sk-not-used", webhook_secret=secret)
    event = sdk.webhooks.unwrap(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert (event.object, event.type) == ("event", COMPLETED)
    assert event.data.to_dict() == {"id": "gen_abc", "status": "completed"}
    assert event.id == message.event.public_id
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)

    page = client.get(f"/dashboard/webhooks/{message.endpoint_id}/").content.decode()
    attempts = re.findall(r"HTTP (\d{3})</span>", page)
    assert attempts == ["500", "500", "200"]
    assert message.webhook_id in page
    assert secret not in log and secret.removeprefix("whsec_") not in log


def test_a_public_sites_worker_refuses_a_private_address(
    worker_env: dict[str, str], receiver: Any, owner: Any, client: Any
) -> None:
    # Made before the site went public (the form would refuse it now).
    https_loopback = receiver.url.replace("http://", "https://")
    endpoint = Endpoint.objects.create(
        account=owner.personal_account,
        url=https_loopback,
        event_types=[COMPLETED],
        secret_encrypted=crypto.encrypt(crypto.new_secret()),
    )
    production = {**worker_env, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "false"}
    with running_worker(production) as worker:
        with transaction.atomic():
            services.publish(
                owner.personal_account,
                COMPLETED,
                {"id": "gen_x", "status": "failed"},
                event_key="x",
            )
        wait_until(lambda: Message.objects.filter(status="failed").exists(), worker, "refusal")

    assert receiver.requests == []
    message = Message.objects.get()
    refusals = [attempt.error for attempt in message.attempt_log.all()]
    assert len(refusals) == 3
    assert all("points to a private, loopback" in error for error in refusals)
    client.force_login(owner)
    page = client.get(f"/dashboard/webhooks/{endpoint.pk}/").content.decode()
    assert "Refused: The endpoint URL points to a private, loopback" in page


def test_the_sweep_delivers_a_message_whose_task_was_lost(
    worker_env: dict[str, str], receiver: Any, owner: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    services.create_endpoint(owner.personal_account, receiver.url, [COMPLETED])

    def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the broker is down")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.deliver, "apply_async", lost)
        with transaction.atomic():
            services.publish(
                owner.personal_account,
                COMPLETED,
                {"id": "gen_y", "status": "completed"},
                event_key="y",
            )
    assert Message.objects.get().status == "pending"

    beat = {**worker_env, "WEBHOOK_SWEEP_EVERY_SECONDS": "1"}
    with running_worker(beat, beat_schedule=tmp_path / "beat-schedule") as worker:
        wait_until(lambda: Message.objects.filter(status="succeeded").exists(), worker, "the sweep")
    assert len(receiver.requests) == 1


def test_each_job_is_announced_to_a_receiver_that_verifies_it_with_the_openai_sdk(
    worker_env: dict[str, str], receiver: Any, owner: Any, owner_key: str, client: Any,
    default_prices: None,
) -> None:  # fmt: skip
    # The whole way: an API job queued, run and settled by a worker, its completion (and a
    # blocked prompt's failure) signed and delivered by the same worker.
    issued = services.create_endpoint(
        owner.personal_account, receiver.url, list(events.EVENT_TYPES)
    )
    auth = {"Authorization": f"Bearer {owner_key}", "Prefer": "respond-async"}
    with running_worker(worker_env) as worker:
        submitted = [
            client.post(
                "/v1/images/generations",
                {"model": "seedream-4-0", "prompt": f"{prompt} {uuid.uuid4().hex}"},
                content_type="application/json",
                headers=auth,
            )
            for prompt in ("a kite", "a lighthouse", "[sim:block-prompt] a kite")
        ]
        assert [r.status_code for r in submitted] == [202] * 3, [r.content for r in submitted]
        jobs = [r.json()["id"] for r in submitted]
        wait_until(
            lambda: Message.objects.filter(status="succeeded").count() == 3, worker, "deliveries"
        )

    sdk = openai.OpenAI(api_key="sk-not-used", webhook_secret=issued.secret)
    received = {}
    for request in receiver.requests:
        event = sdk.webhooks.unwrap(request.body, request.headers)
        received[event.data.to_dict()["id"]] = (event.type, event.data.to_dict()["status"])
    assert received == {
        jobs[0]: (events.IMAGE_GENERATION_COMPLETED, "completed"),
        jobs[1]: (events.IMAGE_GENERATION_COMPLETED, "completed"),
        jobs[2]: (events.IMAGE_GENERATION_FAILED, "failed"),
    }
