"""A generation whose request died is settled by the reconciler: released once, never charged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from generation import services, tasks
from generation.catalog import get_model, resolve_size
from generation.models import Generation
from generation.upstream import DeliveredImage
from tests.support.money import assert_ledger_balanced, ledger_kinds
from tests.support.outcomes import one_per_call
from tests.support.provenance import small_jpeg

pytestmark = pytest.mark.smoke


@pytest.fixture
def stuck(owner):
    model = get_model("seedream-4-0")
    spec = services.GenerationSpec(
        model=model, prompt="lost", size=resolve_size(model, "1024x1024"), n=2
    )
    return services.begin_generation(account=owner.personal_account, made_by_id=owner.pk, spec=spec)


def past_deadline(generation):
    return generation.deadline_at + timedelta(seconds=1)


def test_it_leaves_generations_inside_their_deadline_alone(stuck, owner):
    assert services.reconcile_stuck_generations(now=timezone.now()) == 0
    assert assert_ledger_balanced(owner) == 920
    assert Generation.objects.get().status == Generation.Status.RUNNING


def test_it_fails_and_releases_a_generation_past_its_deadline_once(stuck, owner):
    assert services.reconcile_stuck_generations(now=past_deadline(stuck)) == 1
    assert services.reconcile_stuck_generations(now=past_deadline(stuck)) == 0

    generation = Generation.objects.get()
    assert generation.status == Generation.Status.FAILED
    assert generation.error_code == "expired"
    assert generation.charged_credits == 0
    assert ledger_kinds(owner) == [("grant", 1000), ("reserve", -80), ("release", 80)]
    assert assert_ledger_balanced(owner) == 1000


def test_a_late_completion_after_reconciling_charges_nothing_and_keeps_no_files(stuck, owner):
    services.reconcile_stuck_generations(now=past_deadline(stuck))
    image = DeliveredImage(small_jpeg(), "image/jpeg", "jpg", 1024, 1024)
    files_before = stored_files()

    completed = services.complete_generation(stuck, one_per_call([image, image]), latency_ms=5)

    assert completed.images == []
    assert completed.generation.status == Generation.Status.FAILED
    assert assert_ledger_balanced(owner) == 1000
    assert stored_files() == files_before


def stored_files(path="images"):
    if not default_storage.exists(path):
        return set()
    dirs, files = default_storage.listdir(path)
    found = {f"{path}/{name}" for name in files}
    for sub in dirs:
        found |= stored_files(f"{path}/{sub}")
    return found


def test_the_command_and_the_periodic_task_run_the_reconciler(stuck, owner, capsys):
    Generation.objects.update(deadline_at=timezone.now() - timedelta(seconds=1))
    call_command("reconcile_generations")
    assert "Reconciled 1 generations." in capsys.readouterr().out
    assert tasks.reconcile_stuck_generations() == 0
    assert assert_ledger_balanced(owner) == 1000


def test_a_capped_keys_expired_generation_gives_its_hold_back_to_the_cap(
    owner, api_key_factory, default_prices
):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import SpendWindow
    from generation import services
    from generation.catalog import get_model, resolve_size
    from keys.models import ApiKey

    key = api_key_factory(owner).api_key
    ApiKey.objects.filter(pk=key.pk).update(spend_cap_credits=100, spend_cap_period="total")
    key.refresh_from_db()
    model = get_model("seedream-4-0")
    assert model is not None
    spec = services.GenerationSpec(
        model=model, prompt="a fox", size=resolve_size(model, "1024x1024"), n=2
    )
    generation = services.begin_generation(
        account=owner.personal_account, made_by_id=owner.pk, spec=spec, api_key=key
    )
    assert SpendWindow.objects.get().spent_credits == 80

    services.reconcile_stuck_generations(now=timezone.now() + timedelta(hours=1))

    generation.refresh_from_db()
    assert generation.status == "failed"
    assert SpendWindow.objects.get().spent_credits == 0
