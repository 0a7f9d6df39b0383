"""/healthz and /readyz: cheap, no session; /readyz names the dependency that does not answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.worker import REDIS_URL


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung dependency."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def no_redis(settings):
    settings.REDIS_URL = ""
    settings.RATE_LIMIT_REDIS_URL = ""
    settings.CELERY_BROKER_URL = "filesystem://"


def test_healthz_says_ok_without_touching_the_database(client):
    # No db fixture: a query would fail the test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["x-request-id"].startswith("req_")
    # Past the browser middleware: no session, no cookie, no Vary.
    assert not response.cookies
    assert "Vary" not in response


def test_healthz_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_reports_each_check_when_everything_answers(client, no_redis):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "failed" not in body
    assert not response.cookies


@pytest.mark.django_db
def test_readyz_checks_each_configured_redis_once(client, no_redis, settings):
    settings.REDIS_URL = REDIS_URL
    settings.RATE_LIMIT_REDIS_URL = REDIS_URL
    settings.CELERY_BROKER_URL = REDIS_URL

    body = client.get("/readyz").json()

    assert set(body["checks"]) == {"database", "storage", "redis"}
    assert body["checks"]["redis"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_a_redis_that_refuses_connections_and_stays_ready(client, no_redis, settings):
    settings.RATE_LIMIT_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    # Redis is optional (the limits count in the database meanwhile): the process stays in
    # the load balancer, and says what is missing.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["failed"] == ["rate_limit_redis"]
    assert body["checks"]["rate_limit_redis"]["ok"] is False
    assert body["checks"]["rate_limit_redis"]["required"] is False
    assert body["checks"]["database"]["required"] is True
    assert body["checks"]["rate_limit_redis"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] is True
    # The address is not told to whoever asks.
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_gives_up_on_a_hung_dependency_within_its_timeout(
    client, no_redis, settings, silent_server
):
    settings.READYZ_TIMEOUT_MS = 300
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_server}/0"

    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["failed"] == ["celery_broker"]
    assert elapsed < 2


@pytest.mark.django_db
def test_readyz_names_storage_that_does_not_answer(client, no_redis, settings):
    settings.READYZ_TIMEOUT_MS = 500
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "images",
                "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                "access_key": "test",
                "secret_key": "bucket-secret",
                "region_name": "us-east-1",
            },
        },
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["storage"]
    assert body["checks"]["database"]["ok"] is True
    assert "secret" not in response.content.decode()
