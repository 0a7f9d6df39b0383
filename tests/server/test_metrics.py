"""/metrics: protected by METRICS_TOKEN, and its counters follow what really happened: requests by
route, generations and upstream calls against the simulator, credits as the ledger has them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from billing.models import LedgerEntry
from generation import tasks
from tests.support.server import running_server
from tests.support.simulator import PROJECT_ROOT
from tests.support.worker import REDIS_URL

TOKEN = "metrics-test-token"


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def get():
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.content
        return parse(response.content.decode())

    return get


def generate(client, key, **body):
    body = {"model": "seedream-4-0", "prompt": "a lighthouse at dusk", "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_the_endpoint_does_not_exist_without_a_configured_token(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 404
    assert b"seedream" not in response.content


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_a_missing_or_wrong_token_is_refused(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"seedream_" not in response.content


def test_the_right_token_gets_prometheus_text(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE seedream_http_requests_total counter" in response.content
    assert not response.cookies


def test_a_generation_moves_the_request_generation_and_upstream_counters(client, owner_key, scrape):
    before = scrape()

    response = generate(client, owner_key, n=2)

    assert response.status_code == 200, response.content
    after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "api:images-generations", "method": "POST"}
    assert delta("seedream_http_requests_total", status="200", **route) == 1
    assert delta("seedream_http_request_duration_seconds_count", **route) == 1
    assert delta("seedream_http_request_duration_seconds_sum", **route) > 0
    labels = {"model": "seedream-4-0", "source": "api"}
    assert delta("seedream_generations_total", outcome="succeeded", **labels) == 1
    assert delta("seedream_images_delivered_total", **labels) == 2
    assert delta("seedream_upstream_request_duration_seconds_count", operation="generate") == 2
    assert delta("seedream_upstream_request_duration_seconds_count", operation="download") == 2


def test_images_handed_over_in_the_answer_are_not_downloaded(client, owner_key, scrape, settings):
    settings.UPSTREAM_RESPONSE_FORMAT = "b64_json"
    before = scrape()

    response = generate(client, owner_key, n=2)

    assert response.status_code == 200, response.content
    after = scrape()
    name = "seedream_upstream_request_duration_seconds_count"
    moved = {
        operation: value(after, name, operation=operation)
        - value(before, name, operation=operation)
        for operation in ("generate", "download")
    }
    assert moved == {"generate": 2, "download": 0}


def test_the_route_label_is_the_pattern_name_never_the_path(client, owner_key, scrape):
    model_id = f"no-such-model-{uuid.uuid4().hex[:8]}"
    client.get(f"/v1/models/{model_id}", headers={"Authorization": f"Bearer {owner_key}"})
    client.get(f"/v1/nothing-here-{model_id}")
    client.get(f"/nowhere-{model_id}")

    samples = scrape()

    routes = {dict(labels).get("route") for (_, labels) in samples if labels}
    assert not any(model_id in (route or "") for route in routes)
    assert not any((route or "").startswith("/") for route in routes)
    assert value(
        samples, "seedream_http_requests_total", route="api:model", method="GET", status="404"
    )
    # An unnamed pattern is named by its view; no pattern at all, by one shared label.
    assert value(
        samples,
        "seedream_http_requests_total",
        route="api:api.views.not_found",
        method="GET",
        status="404",
    )
    assert value(
        samples, "seedream_http_requests_total", route="unmatched", method="GET", status="404"
    )


def test_partial_and_failed_generations_and_upstream_errors_by_kind(client, owner_key, scrape):
    before = scrape()

    partial = generate(client, owner_key, n=3, prompt=f"a bridge {uuid.uuid4()} [sim:deliver=1]")
    blocked = generate(client, owner_key, prompt="a storm [sim:block-prompt]")

    assert partial.status_code == 200, partial.content
    assert partial.json()["images_delivered"] == 1
    assert blocked.status_code == 400
    after = scrape()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"model": "seedream-4-0", "source": "api"}
    assert delta("seedream_generations_total", outcome="partial", **labels) == 1
    assert delta("seedream_generations_total", outcome="failed", **labels) == 1
    assert delta("seedream_upstream_errors_total", operation="generate", kind="prompt_blocked") == 1
    # Two images failed, each after every retry: all of those attempts count.
    assert delta("seedream_upstream_errors_total", operation="generate", kind="upstream_error") >= 2


def test_credit_counters_match_the_ledger(client, owner, owner_key, scrape):
    before = scrape()

    assert generate(client, owner_key, n=2).status_code == 200
    assert generate(client, owner_key, n=3, prompt=f"x {uuid.uuid4()} [sim:deliver=1]").json()
    assert generate(client, owner_key, prompt="a storm [sim:block-prompt]").status_code == 400
    after = scrape()

    def delta(name):
        return value(after, name, model="seedream-4-0", source="api") - value(
            before, name, model="seedream-4-0", source="api"
        )

    def ledger(kind):
        entries = LedgerEntry.objects.filter(account__owner__personal_owner=owner, kind=kind)
        return abs(entries.aggregate(total=Sum("amount_credits"))["total"] or 0)

    assert delta("seedream_credits_reserved_total") == ledger("reserve") == 40 * 6
    assert delta("seedream_credits_released_total") == ledger("release") == 40 * 6
    assert delta("seedream_credits_charged_total") == ledger("charge") == 40 * 3


def test_task_outcomes_are_counted(scrape, db):
    before = scrape()

    tasks.prune_rate_limit_counters.apply()

    after = scrape()
    labels = {"task": "generation.tasks.prune_rate_limit_counters", "outcome": "succeeded"}
    assert (
        value(after, "seedream_celery_tasks_total", **labels)
        - value(before, "seedream_celery_tasks_total", **labels)
        == 1
    )


def test_queue_depth_is_read_from_a_redis_broker_at_scrape_time(scrape, settings):
    queue = f"test-metrics-{uuid.uuid4().hex[:12]}"
    settings.CELERY_BROKER_URL = REDIS_URL
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.rpush(queue, "one", "two", "three")
        assert value(scrape(), "seedream_celery_queue_length", queue=queue) == 3
        client.lpop(queue)
        assert value(scrape(), "seedream_celery_queue_length", queue=queue) == 2
    finally:
        client.delete(queue)
        client.close()


def test_queue_depth_counts_the_filesystem_brokers_files(scrape, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_TASK_DEFAULT_QUEUE = "celery"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    for name in ("1_a.celery.msg", "2_b.celery.msg", "3_c.other.msg"):
        (tmp_path / name).write_text("{}")

    assert value(scrape(), "seedream_celery_queue_length", queue="celery") == 2


def test_an_unreachable_broker_leaves_the_queue_gauge_out_and_the_scrape_answers(scrape, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.READYZ_TIMEOUT_MS = 300

    samples = scrape()

    assert not any(name == "seedream_celery_queue_length" for name, _ in samples)


MULTIPROCESS_WORKER = """
import django, sys
django.setup()
from server import metrics
metrics.CREDITS_RESERVED.labels("seedream-4-0", "api").inc(int(sys.argv[1]))
"""

MULTIPROCESS_SCRAPE = """
import django
django.setup()
from server import metrics
print(metrics.render()[0].decode())
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }

    def run(script, *args):
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    run(MULTIPROCESS_WORKER, "7")
    run(MULTIPROCESS_WORKER, "5")
    assert len(list(Path(tmp_path).glob("counter_*.db"))) == 2

    samples = parse(run(MULTIPROCESS_SCRAPE))

    labels = {"model": "seedream-4-0", "source": "api"}
    assert value(samples, "seedream_credits_reserved_total", **labels) == 12


@pytest.mark.integration
def test_two_uvicorn_workers_share_one_view_of_the_requests(live_server_env, tmp_path):
    env = {
        **live_server_env,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "METRICS_TOKEN": TOKEN,
    }
    with running_server(env, workers=2) as base_url, httpx.Client(base_url=base_url) as http:
        for _ in range(40):
            # A new connection each time, so both workers answer some.
            assert httpx.get(f"{base_url}/healthz").status_code == 200
        totals = set()
        for _ in range(6):
            response = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200
            samples = parse(response.text)
            totals.add(
                value(
                    samples,
                    "seedream_http_requests_total",
                    route="server:healthz",
                    method="GET",
                    status="200",
                )
            )
    # Whichever worker answers the scrape counts every worker's requests.
    assert totals == {40}
    assert len(list(tmp_path.glob("*.db"))) >= 2
