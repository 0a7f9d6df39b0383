"""The books after a fault: customers opened through the product's own services, and the check
every fault test ends with (every balance equals its ledger, nothing is held).

These run in the test process against the test's database, or, for a database the test process
is not connected to (a PostgreSQL cluster of the test's own), in a child process on it
(``python -m tests.faults``, see ``__main__.py``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from billing import services as billing
from billing.models import CreditAccount, LedgerEntry, LedgerKind
from generation.models import AccountRateLimit, ConcurrencySlot, Generation, Image
from keys import services as keys


@dataclass(frozen=True)
class Customer:
    """A customer with credits and an API key (``key`` is the raw key the client sends)."""

    user_id: int
    email: str
    key: str
    account_id: int  # their personal account's: whose credits and limits the key uses

    def user(self) -> User:
        return User.objects.get(pk=self.user_id)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Customer:
        return cls(
            int(data["user_id"]), str(data["email"]), str(data["key"]), int(data["account_id"])
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_customer(credits: int, *, concurrent_generations: int | None = None) -> Customer:
    """A new customer granted ``credits`` and issued a key, through billing's and keys' own
    services; ``concurrent_generations`` sets an operator's custom concurrency limit."""
    email = f"faults-{uuid.uuid4().hex[:12]}@example.com"
    user = User.objects.create_user(email, "pw")
    if credits:
        billing.grant(
            user.personal_account,
            credits,
            description="fault test credits",
            idempotency_key=f"faults:{email}",
        )
    if concurrent_generations is not None:
        AccountRateLimit.objects.create(
            account=user.personal_account,
            concurrent_generations=concurrent_generations,
            note="fault test",
        )
    account = user.personal_account
    return Customer(user.pk, email, keys.create_key(account, "fault test").raw_key, account.pk)


def problems(redis_url: str = "") -> list[str]:
    """What is wrong with the books, in words; empty when every account's balance equals the
    sum of its ledger (and no running sum dipped below zero), every generation is settled
    exactly once (its hold released, what it delivered charged once at its quote, nothing for
    a failure), and no concurrency slot is held: in the database, nor in the Redis at
    ``redis_url`` if the rate limits were counted there."""
    found: list[str] = []
    for account in CreditAccount.objects.select_related("owner__personal_owner").order_by("pk"):
        found += _account_problems(account)
    for generation in Generation.objects.order_by("pk"):
        found += _generation_problems(generation)
    found += _slot_problems(redis_url)
    return found


def _account_problems(account: CreditAccount) -> list[str]:
    found = []
    running = 0
    for entry in LedgerEntry.objects.filter(account=account).order_by("id"):
        running += entry.amount_credits
        if entry.balance_after_credits != running:
            found.append(
                f"{account.owner}: {entry} says balance {entry.balance_after_credits}, "
                f"the ledger's running sum is {running}"
            )
        if running < 0:
            found.append(f"{account.owner}: {entry} took the balance below zero")
    total = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_credits"))["s"]
    if account.balance_credits != (total or 0):
        found.append(f"{account.owner}: balance {account.balance_credits}, ledger sum {total or 0}")
    return found


def _generation_problems(generation: Generation) -> list[str]:
    name = f"{generation.public_id} ({generation.prompt[:40]!r})"
    if not generation.is_finished:
        return [f"{name} is still {generation.status}: {generation.reserved_credits} held"]
    found = []
    images = Image.objects.filter(generation=generation).count()
    if images != generation.images_delivered:
        found.append(f"{name}: {images} image rows for {generation.images_delivered} delivered")
    if generation.status == Generation.Status.FAILED and generation.images_delivered:
        found.append(f"{name} failed but delivered {generation.images_delivered} images")
    if generation.reserved_credits:
        # What billing charges for what was delivered, from the quote the row was accepted with.
        quote = billing.Quote.of_hold(
            record=generation.price_quote,
            per_image_credits=generation.price_per_image_credits,
            images=generation.n,
            held_credits=generation.reserved_credits,
        )
        delivered = [
            billing.Delivered(call=image.index, pixels=image.width * image.height)
            for image in Image.objects.filter(generation=generation)
        ]
        expected = billing.charged_credits(quote.settlement(delivered=delivered))
        if generation.charged_credits != expected:
            found.append(
                f"{name}: charged {generation.charged_credits} for "
                f"{generation.images_delivered} images, the quote says {expected}"
            )
    charge = (
        [(LedgerKind.CHARGE, -generation.charged_credits)] if generation.charged_credits else []
    )
    hold = (
        [
            (LedgerKind.RESERVE, -generation.reserved_credits),
            (LedgerKind.RELEASE, generation.reserved_credits),
        ]
        if generation.reserved_credits
        else []
    )
    lines = list(
        LedgerEntry.objects.filter(reference=generation.ledger_reference)
        .order_by("id")
        .values_list("kind", "amount_credits")
    )
    if lines != hold + charge:
        found.append(f"{name}: ledger lines {lines}, expected {hold + charge}")
    return found


def _slot_problems(redis_url: str) -> list[str]:
    now = timezone.now()
    found = [
        f"concurrency slot of {slot.holder} for {slot.scope} held until {slot.expires_at}"
        for slot in ConcurrencySlot.objects.filter(expires_at__gt=now)
    ]
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            for key in client.scan_iter(match="seedream:rl:*:slots"):
                for holder in client.zrangebyscore(key, time.time(), "+inf"):
                    found.append(f"concurrency slot of {_text(holder)} in Redis ({_text(key)})")
        finally:
            client.close()
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_books_balance_and_nothing_held(redis_url: str = "") -> None:
    """Every balance equals its ledger; no generation, hold or concurrency slot is left."""
    found = problems(redis_url)
    assert not found, "the books do not balance:\n" + "\n".join(found)
