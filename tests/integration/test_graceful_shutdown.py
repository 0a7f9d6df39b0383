"""Stopping a web process (SIGTERM, as a deploy does) loses no generation and charges none twice:
it finishes what it can within its grace period and hands back the rest, refunded at once."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from generation.models import Generation
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.server import server_process

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("default_prices")]


def body(prompt: str) -> dict[str, Any]:
    return {"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"}


def hang_up(base_url: str, key: str, prompt: str) -> None:
    """Send the request and leave after half a second, as a client that gives up does."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{base_url}/v1/images/generations",
            json=body(prompt),
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(0.5),
        )


def stop_after_the_client_left(server: Any, key: str, prompt: str) -> None:
    """Start a generation, hang up, and SIGTERM the server once it runs; it must exit cleanly."""
    hang_up(server.url, key, prompt)
    wait_until_running(prompt)
    server.process.send_signal(signal.SIGTERM)
    # uvicorn exits by re-raising the signal it handled, once it has shut down cleanly.
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM), server.log()
    assert "Application shutdown complete" in server.log()


def wait_until_running(prompt: str, timeout: float = 15) -> Generation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation = Generation.objects.filter(prompt=prompt).first()
        if generation is not None and generation.status == "running":
            return generation
        time.sleep(0.05)
    raise AssertionError(f"no running generation for {prompt!r}")


@pytest.mark.django_db(transaction=True)
def test_a_request_in_flight_when_the_server_is_stopped_is_answered_and_charged_once(
    live_server_env, user_factory, api_key_factory
):
    owner = user_factory(credits=1000)
    key = api_key_factory(owner).raw_key
    prompt = f"a slow ship {uuid.uuid4().hex[:6]} [sim:latency=2]"
    answers: list[httpx.Response] = []
    with server_process(live_server_env, graceful_seconds=20) as server:
        caller = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{server.url}/v1/images/generations",
                    json=body(prompt),
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
            )
        )
        caller.start()
        wait_until_running(prompt)
        server.process.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        # uvicorn exits by re-raising the signal it handled, once it has shut down cleanly.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM), server.log()
        assert "Application shutdown complete" in server.log()

    assert answers and answers[0].status_code == 200, answers and answers[0].text
    generation = Generation.objects.get(prompt=prompt)
    assert (generation.status, generation.charged_credits) == ("succeeded", 40)
    assert assert_ledger_balanced(owner) == 960


@pytest.mark.django_db(transaction=True)
def test_a_generation_whose_client_left_finishes_before_the_process_exits(
    live_server_env, user_factory, api_key_factory
):
    owner = user_factory(credits=1000)
    key = api_key_factory(owner).raw_key
    prompt = f"a slow lighthouse {uuid.uuid4().hex[:6]} [sim:latency=2]"
    with server_process(live_server_env, graceful_seconds=5) as server:
        stop_after_the_client_left(server, key, prompt)

    generation = Generation.objects.get(prompt=prompt)
    assert (generation.status, generation.images_delivered, generation.charged_credits) == (
        "succeeded", 1, 40,
    )  # fmt: skip
    assert ledger_kinds(owner).count(("charge", -40)) == 1


@pytest.mark.django_db(transaction=True)
def test_what_outlasts_the_grace_period_is_handed_back_refunded_at_once(
    live_server_env, user_factory, api_key_factory
):
    owner = user_factory(credits=1000)
    key = api_key_factory(owner).raw_key
    prompt = f"a very slow mill {uuid.uuid4().hex[:6]} [sim:latency=20]"
    env = {**live_server_env, "SHUTDOWN_GRACE_SECONDS": "1"}
    with server_process(env, graceful_seconds=1) as server:
        stop_after_the_client_left(server, key, prompt)

    # Settled by the stopping process itself, long before the reconciler's deadline.
    generation = Generation.objects.get(prompt=prompt)
    assert (generation.status, generation.charged_credits) == ("failed", 0)
    assert "restarted" in generation.error_message
    assert assert_ledger_balanced(owner) == 1000
    assert ledger_kinds(owner)[-1] == ("release", 40)
