"""The image bytes a web process holds at once, bounded by WEB_MAX_IMAGE_BYTES_IN_FLIGHT.

A generation's images are in the process's memory from the moment they are read from the
upstream (a download, or the upstream's answer carrying them as base64) until they are stored;
a ``b64_json`` answer is then streamed from storage a chunk at a time (api/views.py), so it adds
a fixed few hundred kilobytes per answer, not its images. Ten 4K photographs are about 30 MB,
and up to ten times UPSTREAM_IMAGE_MAX_BYTES (320 MiB) if the upstream sends the largest images
allowed, so without a bound a burst of such requests takes a process past its memory.

Each API generation reserves, before anything is charged or sent upstream, an estimate of the
bytes its images will take (``estimate_bytes``). A reservation that does not fit is refused
(``Busy``: 503 with Retry-After, nothing charged), except in an idle process, which takes any
one request so that a budget smaller than one request's estimate does not refuse it for ever.
Once admitted a generation is never refused: what it actually reads is counted as it arrives
(``Reservation.count``), and beyond its estimate it raises the process's total, which refuses
the next requests sooner. The reservation is released when its images are stored, whatever the
outcome.

The budget lives on the process, shared by its event loop's requests (and, under Django's test
client or a WSGI server, by threads: hence the lock). Celery workers run one generation per
process and take no reservation.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .refusals import Busy
from .spec import GenerationSpec

# What a reservation assumes each image takes, per pixel: a JPEG of a detailed photograph at
# high quality is 0.2 to 0.5 bytes per pixel (the simulator's [sim:photo] 4K JPEG: 0.17), so a
# 4K image is estimated at 8 MiB. An image that turns out larger is counted as it is read.
ESTIMATED_BYTES_PER_PIXEL = 0.5
# The Retry-After of a refusal: the budget frees as the generations in flight store their images.
RETRY_AFTER_SECONDS = 2


class Budget:
    """Bytes a process lets its generations hold at once. ``capacity`` 0: no bound."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._lock = threading.Lock()

    def try_reserve(self, nbytes: int) -> Reservation | None:
        """A reservation of ``nbytes``, or None if it does not fit beside those in flight."""
        with self._lock:
            fits = self.in_use + nbytes <= self.capacity
            if self.capacity and self.in_use and not fits:
                return None
            self.in_use += nbytes
        return Reservation(self, nbytes)


class Reservation:
    """One generation's share of the budget: its estimate, or what it has read if that is more.

    ``count`` and ``release`` may be called from any thread; ``release`` more than once."""

    def __init__(self, budget: Budget, estimate: int) -> None:
        self._budget = budget
        self.estimate = estimate
        self.counted = 0
        self._held = estimate
        self._released = False

    @property
    def held(self) -> int:
        """The bytes this reservation takes from the budget now."""
        return 0 if self._released else self._held

    def count(self, nbytes: int) -> None:
        """``nbytes`` more were read into memory: past the estimate they are added to the
        process's total (never refused: the work was admitted)."""
        with self._budget._lock:
            self.counted += nbytes
            if not self._released and self.counted > self._held:
                self._budget.in_use += self.counted - self._held
                self._held = self.counted

    def release(self) -> None:
        with self._budget._lock:
            if self._released:
                return
            self._released = True
            self._budget.in_use -= self._held


_budget: Budget | None = None
_budget_lock = threading.Lock()


def budget() -> Budget:
    """This process's budget (made on first use: settings are never read at import time)."""
    global _budget
    if _budget is None:
        with _budget_lock:
            if _budget is None:
                _budget = Budget(settings.WEB_MAX_IMAGE_BYTES_IN_FLIGHT)
    return _budget


@receiver(setting_changed)
def _forget_budget(setting: str, **kwargs: Any) -> None:
    global _budget
    if setting == "WEB_MAX_IMAGE_BYTES_IN_FLIGHT":
        _budget = None


def estimate_bytes(spec: GenerationSpec) -> int:
    """What ``spec``'s images are expected to take in memory, all of them at once, with its
    reference images and the base64 of the one body that carries them upstream at a time."""
    per_image = min(
        int(spec.size.pixels * ESTIMATED_BYTES_PER_PIXEL), settings.UPSTREAM_IMAGE_MAX_BYTES
    )
    references = sum(len(r.data) for r in spec.references)
    return spec.most_images * per_image + references + references * 4 // 3


def reserve(spec: GenerationSpec) -> Reservation:
    """Reserve the memory ``spec``'s images will take, or raise Busy (nothing else is done)."""
    reservation = budget().try_reserve(estimate_bytes(spec))
    if reservation is None:
        raise Busy(
            "This server is busy with other large requests; retry shortly.",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
    return reservation
