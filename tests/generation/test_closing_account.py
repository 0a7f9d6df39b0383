"""Closing an account while its work runs: nothing of it is sent upstream, charged or kept
afterwards (generation/services/reconcile.py, release_work_of_closing_account)."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import services as accounts
from generation import services
from generation.catalog import get_model, resolve_size
from generation.models import Generation, Image
from generation.upstream import DeliveredImage
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.outcomes import one_per_call
from tests.support.provenance import small_jpeg

pytestmark = pytest.mark.smoke

IMAGE = DeliveredImage(small_jpeg(), "image/jpeg", "jpg", 1024, 1024)


def spec(n: int = 1) -> services.GenerationSpec:
    model = get_model("seedream-4-0")
    assert model is not None
    return services.GenerationSpec(
        model=model, prompt="a fox", size=resolve_size(model, "1024x1024"), n=n
    )


def test_a_generation_that_delivers_after_its_account_closed_is_not_charged_or_kept(
    owner: Any, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    running = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec(2)
    )

    accounts.close_account(owner)
    completed = services.complete_generation(running, one_per_call([IMAGE, IMAGE]), latency_ms=5)

    assert completed.images == []
    assert not Image.objects.exists()
    assert not [f for f in tmp_path.rglob("*") if f.is_file()]  # the delivered files went again
    failed = Generation.objects.get(pk=running.pk)
    assert (failed.status, failed.error_code, failed.charged_credits) == (
        "failed",
        "account_closed",
        0,
    )
    assert ledger_kinds(owner)[-2:] == [("reserve", -80), ("release", 80)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_queued_playground_run_of_a_closed_account_is_never_sent_upstream(
    owner: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    sent: list[int] = []
    monkeypatch.setattr("generation.tasks.send_generation", lambda pk, countdown=0: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        queued = services.submit_generation(account=owner.personal_account, user=owner, spec=spec())

    accounts.close_account(owner)
    called: list[Any] = []
    monkeypatch.setattr(services.run, "produce_images", lambda *a: called.append(a))

    assert services.run_queued_generation(queued.pk).status == "not_claimed"
    assert called == []
    assert Generation.objects.get(pk=queued.pk).error_code == "account_closed"
    assert assert_ledger_balanced(owner) == 1000


def test_work_already_settled_is_left_as_it_was(owner: Any) -> None:
    done = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec()
    )
    services.complete_generation(done, [IMAGE], latency_ms=5)

    assert services.release_work_of_closing_account(owner.personal_account.pk) == 0

    assert Generation.objects.get(pk=done.pk).status == "succeeded"
    assert assert_ledger_balanced(owner) == 960
