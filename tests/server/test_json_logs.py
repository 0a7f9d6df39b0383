"""LOG_FORMAT=json: one JSON object per line, each with the id of the request being served, and
on a Celery task the id of the request that queued it. Prompts and keys stay out of the logs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from config.celery import app
from generation import services
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from server.celery_signals import HEADER
from server.middleware import RequestIdFilter, request_id_var
from tests.support.simulator import PROJECT_ROOT
from tests.support.worker import redis_broker, running_worker


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger also writes to a buffer through the json formatter and filter that
    LOG_FORMAT=json configures, at INFO."""
    spec = dict(django_settings.LOGGING["formatters"]["json"])
    formatter = import_string(spec.pop("()"))(**spec)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def generate(client, key, prompt, **body):
    body = {"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def test_a_requests_log_lines_carry_its_request_id(client, owner_key, json_lines, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    # Two of three images fail upstream: the client logs a warning for each.
    response = generate(client, owner_key, f"a harbour {uuid.uuid4()} [sim:deliver=1]", n=3)

    assert response.status_code == 200, response.content
    lines = [r for r in records(json_lines) if r["logger"] == "generation.upstream"]
    assert len(lines) == 2
    for line in lines:
        assert line["request_id"] == response["x-request-id"]
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
    # Outside the request, no id.
    logging.getLogger("tests").warning("between requests")
    assert records(json_lines)[-1]["request_id"] is None


def test_each_request_gets_its_own_id_in_the_logs(client, owner_key, json_lines, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    first = generate(client, owner_key, "a quay [sim:error-500]")
    second = generate(client, owner_key, "a pier [sim:error-500]")

    ids = [r["request_id"] for r in records(json_lines) if r["logger"] == "generation.upstream"]
    assert ids == [first["x-request-id"], second["x-request-id"]]
    assert first["x-request-id"] != second["x-request-id"]


def test_no_prompt_or_key_in_the_logs_of_a_generation(client, owner_key, json_lines, settings):
    settings.UPSTREAM_MAX_RETRIES = 1
    secret = f"my confidential prompt {uuid.uuid4()}"
    generate(client, owner_key, secret, n=2)
    generate(client, owner_key, f"{secret} [sim:deliver=0]")
    generate(client, owner_key, f"{secret} [sim:block-prompt]")
    generate(client, owner_key, f"{secret} [sim:error-429]")
    generate(client, "sk-seedream-not-a-real-key-1234567890", secret)

    text = json_lines.getvalue()
    assert text, "the failures above should have logged something"
    assert "confidential" not in text
    assert owner_key not in text
    assert owner_key[-12:] not in text
    assert "not-a-real-key" not in text


def test_an_eager_task_keeps_the_request_id_of_its_caller(json_lines, db):
    token = request_id_var.set("req_eager_caller")
    try:
        from generation import tasks

        tasks.purge_expired_images.apply()
        assert request_id_var.get() == "req_eager_caller"
        logging.getLogger("generation.tasks").info("after the task")
    finally:
        request_id_var.reset(token)
    ids = {r["request_id"] for r in records(json_lines)}
    assert ids == {"req_eager_caller"}


def test_a_published_task_carries_the_request_id_in_its_headers_and_the_worker_restores_it():
    """The two signal receivers, as a broker round trip uses them."""
    from server import celery_signals

    headers: dict = {}
    token = request_id_var.set("req_publisher")
    try:
        celery_signals.add_request_id(headers=headers)
    finally:
        request_id_var.reset(token)
    assert headers == {HEADER: "req_publisher"}

    seen: list = []

    @app.task(name=f"tests.seen_request_id_{uuid.uuid4().hex[:6]}")
    def seen_request_id() -> None:
        seen.append(request_id_var.get())

    seen_request_id.apply(headers=headers)
    assert seen == ["req_publisher"]
    assert request_id_var.get() is None


def test_without_a_request_nothing_is_added_to_the_headers():
    from server import celery_signals

    headers: dict = {}
    celery_signals.add_request_id(headers=headers)
    assert headers == {}


def test_log_format_json_prints_one_object_per_line():
    script = (
        "import django, logging\n"
        "django.setup()\n"
        "from server.middleware import request_id_var\n"
        "logging.getLogger('demo').warning('plain line')\n"
        "request_id_var.set('req_demo')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('demo').exception('with a traceback')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        check=True,
    )

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["level"], line["message"], line["request_id"]) for line in lines] == [
        ("WARNING", "plain line", None),
        ("ERROR", "with a traceback", "req_demo"),
    ]
    assert "ZeroDivisionError" in lines[1]["exc_info"]
    assert all(line["logger"] == "demo" and line["time"] for line in lines)


def test_an_unknown_log_format_is_refused():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json" in result.stderr


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.usefixtures("default_prices")
def test_a_celery_worker_logs_in_json_with_the_request_id_that_queued_the_task(
    live_server_env, owner
):
    secret = f"a secret lagoon {uuid.uuid4()}"
    with redis_broker({**live_server_env, "LOG_FORMAT": "json"}) as env:
        env = {**env, "UPSTREAM_MAX_RETRIES": "0", "GENERATION_RETRY_BACKOFF_SECONDS": "0"}
        with running_worker(env) as worker:
            model = get_model("seedream-4-0")
            spec = services.GenerationSpec(
                model=model,
                prompt=f"{secret} [sim:fail-first=1]",
                size=resolve_size(model, "1024x1024"),
                n=1,
            )
            token = request_id_var.set("req_from_the_playground")
            try:
                generation = services.submit_generation(
                    account=owner.personal_account, user=owner, spec=spec
                )
            finally:
                request_id_var.reset(token)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                generation.refresh_from_db()
                if generation.status == Generation.Status.SUCCEEDED:
                    break
                time.sleep(0.2)
            assert generation.status == Generation.Status.SUCCEEDED, worker.log()
            time.sleep(0.5)  # the last lines of the second run
            log = worker.log()

    # Every log record is a JSON line. (Celery also prints a banner, and a warning when run as
    # root, straight to the terminal before logging is set up: those are not log records.)
    assert not re.search(r"^\[\d{4}-", log, re.MULTILINE), "a plain log line"
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    tagged = [line for line in lines if line.get("request_id") == "req_from_the_playground"]
    messages = " | ".join(line["message"] for line in tagged)
    # The first run (a transient fault, then sent again from inside the task) and the second
    # run (sent by the first, so carrying the same id) both log under the playground request.
    assert "transient upstream fault, retrying" in messages
    assert sum("succeeded" in line["message"] for line in tagged) == 2, messages
    assert "lagoon" not in log
