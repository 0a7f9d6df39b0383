"""Playground generations run by a task: queued, claimed once, retried only when it can help,
and recovered by the reconciler when a message is lost or a worker dies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generation import services, tasks
from generation.catalog import get_model, resolve_size
from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced, ledger_kinds


@pytest.fixture
def sent(monkeypatch):
    """The generation ids handed to the broker, in order (the broker itself is not needed)."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        tasks, "send_generation", lambda pk, countdown=0: calls.append((pk, countdown))
    )
    return calls


@pytest.fixture
def submit(owner, sent, django_capture_on_commit_callbacks):
    def make(prompt="a kite over the sea", n=1):
        model = get_model("seedream-4-0")
        spec = services.GenerationSpec(
            model=model, prompt=prompt, size=resolve_size(model, "1024x1024"), n=n
        )
        with django_capture_on_commit_callbacks(execute=True):
            return services.submit_generation(account=owner.personal_account, user=owner, spec=spec)

    return make


def test_submitting_reserves_queues_and_sends_the_task_after_commit(submit, sent, owner):
    generation = submit(n=2)

    assert generation.status == Generation.Status.QUEUED
    assert generation.source == Generation.Source.PLAYGROUND
    assert generation.dispatched_at is not None
    assert sent == [(generation.pk, 0)]
    assert ledger_kinds(owner) == [("grant", 1000), ("reserve", -80)]


def test_a_run_delivers_charges_and_only_one_run_can_claim_the_row(submit, owner):
    generation = submit(n=2)

    assert services.run_queued_generation(generation.pk).status == "done"
    assert services.run_queued_generation(generation.pk).status == "not_claimed"

    generation.refresh_from_db()
    assert (generation.status, generation.images_delivered, generation.attempts) == (
        "succeeded", 2, 1,
    )  # fmt: skip
    assert Image.objects.filter(generation=generation).count() == 2
    assert assert_ledger_balanced(owner) == 1000 - 80
    assert ledger_kinds(owner)[-2:] == [("release", 80), ("charge", -80)]


def test_a_transient_fault_is_retried_with_backoff_and_then_succeeds(submit, settings, owner):
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 7
    settings.UPSTREAM_MAX_RETRIES = 0  # so the client's own retries don't absorb the fault
    generation = submit(prompt="a mill [sim:fail-first=1]")

    first = services.run_queued_generation(generation.pk)

    assert first == services.RunResult("retry", 7)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.QUEUED
    assert generation.dispatched_at > timezone.now() + timedelta(seconds=5)
    assert services.run_queued_generation(generation.pk).status == "done"
    generation.refresh_from_db()
    assert (generation.status, generation.attempts, generation.charged_credits) == (
        "succeeded", 2, 40,
    )  # fmt: skip
    assert assert_ledger_balanced(owner) == 960


def test_a_fault_that_keeps_coming_fails_after_the_last_attempt_and_refunds(
    submit, settings, owner
):
    settings.GENERATION_MAX_ATTEMPTS = 2
    settings.UPSTREAM_MAX_RETRIES = 0
    generation = submit(prompt="a mill [sim:error-500]")

    assert services.run_queued_generation(generation.pk).status == "retry"
    assert services.run_queued_generation(generation.pk).status == "done"

    generation.refresh_from_db()
    assert (generation.status, generation.attempts, generation.charged_credits) == (
        "failed", 2, 0,
    )  # fmt: skip
    assert generation.error_code == "upstream_error"
    assert assert_ledger_balanced(owner) == 1000
    assert ledger_kinds(owner)[-1] == ("release", 40)


def test_a_blocked_prompt_is_not_retried(submit, owner):
    generation = submit(prompt="forbidden [sim:block-prompt]")

    assert services.run_queued_generation(generation.pk).status == "done"

    generation.refresh_from_db()
    assert (generation.status, generation.attempts) == ("failed", 1)
    assert generation.error_code == "content_policy_violation"
    assert assert_ledger_balanced(owner) == 1000


def test_a_lost_message_is_sent_again_once(submit, sent, settings):
    settings.GENERATION_REDISPATCH_SECONDS = 60
    generation = submit()
    sent.clear()
    later = timezone.now() + timedelta(seconds=61)

    services.reconcile_stuck_generations(now=later)
    services.reconcile_stuck_generations(now=later)  # within the wait: not sent twice

    assert sent == [(generation.pk, 0)]
    generation.refresh_from_db()
    assert generation.status == Generation.Status.QUEUED


def test_a_run_whose_worker_died_is_queued_again_and_then_settles_once(
    submit, sent, settings, owner
):
    settings.GENERATION_TIMEOUT_SECONDS = 10
    settings.GENERATION_REDISPATCH_SECONDS = 5
    generation = submit()
    # A worker claimed it and died: the row says running, nobody is running it.
    Generation.objects.filter(pk=generation.pk).update(
        status="running", started_at=timezone.now() - timedelta(seconds=16), attempts=1
    )
    sent.clear()

    services.reconcile_stuck_generations()

    generation.refresh_from_db()
    assert generation.status == Generation.Status.QUEUED
    assert sent == [(generation.pk, 0)]
    assert services.run_queued_generation(generation.pk).status == "done"
    assert assert_ledger_balanced(owner) == 960
    assert ledger_kinds(owner).count(("charge", -40)) == 1


def test_a_run_that_died_on_its_last_attempt_is_failed_and_refunded(submit, sent, settings, owner):
    settings.GENERATION_TIMEOUT_SECONDS = 10
    settings.GENERATION_MAX_ATTEMPTS = 2
    generation = submit()
    Generation.objects.filter(pk=generation.pk).update(
        status="running", started_at=timezone.now() - timedelta(seconds=300), attempts=2
    )
    sent.clear()

    services.reconcile_stuck_generations()

    generation.refresh_from_db()
    assert (generation.status, generation.charged_credits) == ("failed", 0)
    assert "not charged" in generation.error_message
    assert sent == []
    assert assert_ledger_balanced(owner) == 1000


def test_the_reconciler_leaves_a_running_api_request_alone(owner, sent, settings):
    settings.GENERATION_TIMEOUT_SECONDS = 1
    model = get_model("seedream-4-0")
    spec = services.GenerationSpec(model=model, prompt="p", size=resolve_size(model, "1K"), n=1)
    generation = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec
    )

    services.reconcile_stuck_generations(now=timezone.now() + timedelta(seconds=120))

    generation.refresh_from_db()
    assert generation.status == Generation.Status.RUNNING
    assert sent == []
