"""The bytes of images a web process holds at once (generation/memory.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from generation import memory, upstream
from generation.refusals import Busy, Reason
from generation.spec import build_spec
from generation.upstream import DeliveredImage

pytestmark = pytest.mark.smoke

MiB = 1024 * 1024


def test_a_reservation_is_taken_while_it_fits_and_refused_once_it_does_not():
    budget = memory.Budget(100 * MiB)

    first = budget.try_reserve(60 * MiB)
    second = budget.try_reserve(40 * MiB)
    third = budget.try_reserve(1)

    assert first is not None and second is not None
    assert third is None
    assert budget.in_use == 100 * MiB


def test_releasing_gives_the_bytes_back_once_however_often_it_is_called():
    budget = memory.Budget(100 * MiB)
    reservation = budget.try_reserve(60 * MiB)
    assert reservation is not None

    reservation.release()
    reservation.release()

    assert budget.in_use == 0
    assert reservation.held == 0
    assert budget.try_reserve(100 * MiB) is not None


def test_an_idle_process_takes_one_request_larger_than_its_whole_budget():
    # Refused for ever otherwise: a budget smaller than one request's estimate must not make
    # that request impossible, only make it run alone.
    budget = memory.Budget(10 * MiB)

    alone = budget.try_reserve(80 * MiB)
    beside_it = budget.try_reserve(1)

    assert alone is not None
    assert beside_it is None


def test_bytes_read_past_the_estimate_are_added_to_the_process_and_never_refused():
    budget = memory.Budget(100 * MiB)
    reservation = budget.try_reserve(10 * MiB)
    assert reservation is not None

    reservation.count(6 * MiB)
    assert budget.in_use == 10 * MiB  # within its estimate
    reservation.count(104 * MiB)  # the images came larger than estimated: past the budget too

    assert reservation.counted == 110 * MiB
    assert budget.in_use == 110 * MiB
    assert budget.try_reserve(1) is None  # the next requests are refused instead
    reservation.release()
    assert budget.in_use == 0


def test_bytes_counted_after_the_release_change_nothing():
    budget = memory.Budget(100 * MiB)
    reservation = budget.try_reserve(10 * MiB)
    assert reservation is not None
    reservation.release()

    reservation.count(50 * MiB)

    assert budget.in_use == 0


def test_a_budget_of_zero_bounds_nothing():
    budget = memory.Budget(0)
    reservations = [budget.try_reserve(1024 * MiB) for _ in range(10)]
    assert all(r is not None for r in reservations)


def test_the_estimate_is_the_pixels_of_every_image_capped_at_the_largest_image(settings):
    four_k = build_spec(model="seedream-4-0", prompt="x", size="4K", n=10)
    one_k = build_spec(model="seedream-4-0", prompt="x", size="1024x1024", n=1)

    assert memory.estimate_bytes(four_k) == 10 * 8 * MiB
    assert memory.estimate_bytes(one_k) == MiB // 2
    settings.UPSTREAM_IMAGE_MAX_BYTES = 4 * MiB
    assert memory.estimate_bytes(four_k) == 10 * 4 * MiB


def test_the_process_budget_follows_the_setting(settings):
    settings.WEB_MAX_IMAGE_BYTES_IN_FLIGHT = 123
    assert memory.budget().capacity == 123
    assert memory.budget() is memory.budget()


def test_reserve_refuses_with_busy_and_when_to_retry(settings):
    settings.WEB_MAX_IMAGE_BYTES_IN_FLIGHT = 64 * MiB
    spec = build_spec(model="seedream-4-0", prompt="x", size="4K", n=4)
    held = memory.reserve(spec)  # 32 MiB
    try:
        memory.reserve(spec)
        with pytest.raises(Busy) as refused:
            memory.reserve(spec)
    finally:
        held.release()
    assert refused.value.reason == Reason.BUSY
    assert refused.value.retry_after_seconds == memory.RETRY_AFTER_SECONDS


@pytest.mark.parametrize("hand_over", ["url", "b64_json"])
def test_the_upstream_counts_every_image_it_reads_into_memory(settings, hand_over):
    settings.UPSTREAM_RESPONSE_FORMAT = hand_over
    budget = memory.Budget(1024 * MiB)
    reservation = budget.try_reserve(1)
    assert reservation is not None
    request = upstream.UpstreamRequest("seedream-4-0-250828", "a counted fox", "1024x1024")

    async def generate() -> list[upstream.Outcome]:
        try:
            return await upstream.generate_images(request, 2, reservation)
        finally:
            await upstream.close_client()

    outcomes = async_to_sync(generate)()

    delivered = [o for o in outcomes if isinstance(o, DeliveredImage)]
    assert len(delivered) == 2
    image_bytes = sum(len(image.data) for image in delivered)
    if hand_over == "url":
        # The downloads, and the answers that named them (a link and some JSON each).
        assert image_bytes < reservation.counted < image_bytes + 2 * 2048
    else:
        assert reservation.counted > image_bytes * 4 // 3  # the answers, with their base64
    assert budget.in_use == reservation.counted
