"""A store or a database that fails after the upstream delivered (issue 14, item 4): the
customer is told at once and charged nothing, the slot goes back, no file is left behind, and a
settlement that loses its connection is tried once more without charging twice."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import OperationalError
from django.utils import timezone

from generation import ratelimits
from generation.models import ConcurrencySlot, Generation, Image
from generation.services import settle as settle_module
from generation.services import sweep_orphan_files
from server import metrics
from tests.support.money import assert_ledger_balanced, ledger_kinds

pytestmark = pytest.mark.smoke


def generate(client, key, prompt="a lighthouse", **body):
    body = {"model": "seedream-4-0", "prompt": f"{prompt} {uuid.uuid4().hex}", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps({"size": "1024x1024", **body}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


class FullStore:
    """The real store, except that it takes ``room`` files and then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.saved: list[str] = []

    def save(self, name, content, *args, **kwargs):
        if len(self.saved) >= self.room:
            raise OSError(28, "No space left on device")
        self.saved.append(default_storage.save(name, content, *args, **kwargs))
        return self.saved[-1]

    def __getattr__(self, name):
        return getattr(default_storage, name)


@pytest.fixture
def store_fails_after(monkeypatch):
    """Settlements store into a FullStore with room for ``ok`` files."""

    def arm(ok: int) -> list[str]:
        store = FullStore(ok)
        monkeypatch.setattr(settle_module, "default_storage", store)
        return store.saved

    return arm


def test_a_store_that_fails_half_way_settles_as_failed_uncharged_with_no_file_left(
    client, owner, owner_key, settings, store_fails_after
):
    saved = store_fails_after(ok=1)
    before = metrics.IMAGES_NOT_STORED._value.get()

    response = generate(client, owner_key, n=2)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_error"
    assert error["type"] == "server_error"
    assert "not charged" in error["message"]
    # The first image was written, then removed when the second could not be.
    assert len(saved) == 1
    assert not default_storage.exists(saved[0])
    generation = Generation.objects.get(user=owner)
    assert generation.status == Generation.Status.FAILED
    assert generation.charged_credits == 0
    assert not Image.objects.filter(generation=generation).exists()
    assert ledger_kinds(owner)[-2:] == [("reserve", -80), ("release", 80)]
    assert assert_ledger_balanced(owner) == 1000
    assert not ConcurrencySlot.objects.exists()
    assert metrics.IMAGES_NOT_STORED._value.get() == before + 1


class HalfWritingStore:
    """The real store, except that each write stops half way as on a full disk: what was
    written stays under the name, as Django's FileSystemStorage leaves it, and it raises."""

    def __init__(self) -> None:
        self.attempted: list[str] = []

    def save(self, name, content, *args, **kwargs):
        self.attempted.append(name)
        path = Path(default_storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.read()[: content.size // 2])
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(default_storage, name)


def test_a_write_that_fails_half_way_leaves_no_partial_file(client, owner, owner_key, monkeypatch):
    store = HalfWritingStore()
    monkeypatch.setattr(settle_module, "default_storage", store)

    response = generate(client, owner_key)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_error"
    [name] = store.attempted
    assert not default_storage.exists(name)
    assert assert_ledger_balanced(owner) == 1000


def test_three_failed_stores_do_not_lock_a_free_account_out(
    client, owner, owner_key, settings, store_fails_after
):
    # The free tier holds three generations at once: leaked slots would refuse the fourth.
    settings.RATE_LIMIT_TIERS = [
        {"id": "free", "name": "Free", "requests_per_minute": 100, "images_per_minute": 100,
         "concurrent_generations": 3},
    ]  # fmt: skip
    store_fails_after(ok=0)
    for _ in range(3):
        assert generate(client, owner_key).json()["error"]["code"] == "storage_error"
    store_fails_after(ok=100)

    response = generate(client, owner_key)

    assert response.status_code == 200
    assert assert_ledger_balanced(owner) == 1000 - 40


def test_a_failed_store_is_stated_on_the_playground_run_in_words(
    client, owner, owner_key, store_fails_after
):
    from dashboard.live import explain

    store_fails_after(ok=0)
    generate(client, owner_key)

    generation = Generation.objects.get(user=owner)
    assert "could not be saved" in explain(generation)


@pytest.fixture
def settlement_connection_dies(monkeypatch):
    """The first settlement attempt raises as a lost connection does: before or after its
    statement committed."""

    def arm(*, committed: bool) -> list[int]:
        attempts: list[int] = []
        real_once = settle_module._claim_once

        async def once(steps, generation, settlement):
            attempts.append(1)
            if len(attempts) == 1:
                if committed:
                    await real_once(steps, generation, settlement)
                raise OperationalError("server closed the connection unexpectedly")
            return await real_once(steps, generation, settlement)

        monkeypatch.setattr(settle_module, "_claim_once", once)
        return attempts

    return arm


@pytest.mark.parametrize("committed", [False, True], ids=["before-commit", "after-commit"])
def test_a_settlement_that_loses_its_connection_is_tried_once_more_and_charged_once(
    client, owner, owner_key, settlement_connection_dies, committed
):
    attempts = settlement_connection_dies(committed=committed)
    before = metrics.SETTLEMENT_RETRIES._value.get()

    response = generate(client, owner_key, n=2)

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert len(data) == 2
    assert len(attempts) == 2
    generation = Generation.objects.get(user=owner)
    assert generation.status == Generation.Status.SUCCEEDED
    images = Image.objects.filter(generation=generation)
    assert images.count() == 2
    # The answer names the images the database holds, and their files are there.
    for image in images:
        assert default_storage.exists(image.file.name)
        assert any(image.token in item["url"] for item in data)
    assert ledger_kinds(owner)[-3:] == [("reserve", -80), ("release", 80), ("charge", -80)]
    assert assert_ledger_balanced(owner) == 1000 - 80
    assert not ConcurrencySlot.objects.exists()
    assert metrics.SETTLEMENT_RETRIES._value.get() == before + 1


def test_a_settlement_that_fails_twice_still_gives_the_slot_back(
    client, owner, owner_key, monkeypatch
):
    async def always_lost(*args, **kwargs):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(settle_module, "_claim_once", always_lost)
    client.raise_request_exception = False

    response = generate(client, owner_key)

    assert response.status_code == 500
    # Unsettled: the reconciler releases the hold at its deadline; the slot is free now.
    assert Generation.objects.get(user=owner).status in Generation.UNSETTLED
    assert not ConcurrencySlot.objects.exists()


def test_a_settled_generation_is_answered_even_if_its_slot_cannot_be_given_back(
    client, owner, owner_key, monkeypatch, settings
):
    # The database holds the limits (no Redis) and is away just when the slot goes back.
    def unreachable(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 2.00 sec")

    async def aunreachable(*args, **kwargs):
        unreachable()

    monkeypatch.setattr(ratelimits, "release", unreachable)
    monkeypatch.setattr(ratelimits, "arelease", aunreachable)
    before = metrics.SLOT_RELEASES_FAILED._value.get()

    response = generate(client, owner_key)

    # Charged, and told so: the image is the customer's.
    assert response.status_code == 200, response.content
    assert Generation.objects.get(user=owner).status == Generation.Status.SUCCEEDED
    assert assert_ledger_balanced(owner) == 1000 - 40
    # The slot lapses with its lease.
    [slot] = ConcurrencySlot.objects.all()
    lease = timedelta(seconds=settings.RATE_LIMIT_SLOT_LEASE_SECONDS)
    assert timezone.now() < slot.expires_at <= timezone.now() + lease
    assert metrics.SLOT_RELEASES_FAILED._value.get() == before + 1


def test_a_settlement_is_not_retried_for_a_non_connection_error(
    client, owner, owner_key, monkeypatch
):
    attempts = []

    async def broken(*args, **kwargs):
        attempts.append(1)
        raise ValueError("No reservation")

    monkeypatch.setattr(settle_module, "_claim_once", broken)
    client.raise_request_exception = False

    assert generate(client, owner_key).status_code == 500
    assert len(attempts) == 1


def test_hot_path_errors_reach_callers_as_django_errors():
    import psycopg

    from server.asyncdb import _as_django_error, is_connection_lost

    lost = _as_django_error(psycopg.OperationalError("connection lost"))
    assert isinstance(lost, OperationalError)
    assert is_connection_lost(lost)
    from psycopg_pool import PoolTimeout

    try:
        raise _as_django_error(PoolTimeout("no connection in 30 s")) from PoolTimeout()
    except OperationalError as waited:
        assert not is_connection_lost(waited)
    assert not is_connection_lost(ValueError("no"))


def _age(name: str, seconds: float) -> None:
    path = default_storage.path(name)
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_the_orphan_sweep_removes_old_files_no_image_names_and_keeps_the_rest(
    client, owner, owner_key, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)  # a store of this test's own
    settings.ORPHAN_FILE_GRACE_SECONDS = 3600
    kept = generate(client, owner_key).json()["data"][0]["url"]
    image = Image.objects.get(account=owner.personal_account)
    assert image.token in kept
    orphan = default_storage.save("images/zz/zzorphan.jpeg", ContentFile(b"x"))
    orphan_thumb = default_storage.save("thumbs/zz/zzorphan.webp", ContentFile(b"x"))
    young = default_storage.save("images/yy/yyyoung.jpeg", ContentFile(b"x"))
    for name in (orphan, orphan_thumb, image.file.name):
        _age(name, 7200)

    removed = sweep_orphan_files()

    assert removed == 2
    assert not default_storage.exists(orphan)
    assert not default_storage.exists(orphan_thumb)
    assert default_storage.exists(young)  # may belong to a generation not yet settled
    assert default_storage.exists(image.file.name)
    assert sweep_orphan_files(now=timezone.now() + timedelta(hours=2)) == 1  # now old enough
    assert not default_storage.exists(young)
