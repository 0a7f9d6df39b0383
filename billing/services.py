"""Every change to a balance. Each is atomic, locks the account row, and appends ledger rows.

The balance changes only here, in the same transaction as the ledger row that explains it, so the
balance always equals the sum of the account's ledger.

A generation's money moves in three steps, each a ledger line the customer can see:
``reserve`` (-price of everything asked for) when it starts; at the end ``release`` (+the same
amount) and ``charge`` (-price of what was delivered), written together in one transaction.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User

from .models import CreditAccount, LedgerEntry, Price

Kind = LedgerEntry.Kind


class BillingError(Exception):
    pass


class InsufficientCredits(BillingError):
    def __init__(self, *, needed_credits: int, balance_credits: int) -> None:
        super().__init__(f"needs {needed_credits} credits, balance is {balance_credits}")
        self.needed_credits = needed_credits
        self.balance_credits = balance_credits


class UnknownPrice(BillingError):
    pass


@dataclass(frozen=True)
class Settlement:
    charged_credits: int
    released_credits: int
    balance_credits: int


def credits_to_usd(credits: int) -> Decimal:
    """The exact dollar value of a number of credits (for display; never stored)."""
    return Decimal(credits) / Decimal(settings.CREDITS_PER_USD)


def format_usd(credits: int) -> str:
    return f"{credits_to_usd(credits).quantize(Decimal('0.0001')):f}"


def _move(user_id: int, delta_credits: int) -> tuple[int, int] | None:
    """Add ``delta_credits`` to the user's balance unless that would take it below zero.

    One statement checks, changes and locks the account row until the transaction ends, and
    returns (account id, new balance); None when there is no account or not enough credits.
    Raw SQL because the ORM cannot say UPDATE ... RETURNING (PostgreSQL and SQLite 3.35+ can),
    and because this is the hottest statement of every request.
    """
    table = CreditAccount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET balance_credits = balance_credits + %s, updated_at = %s "  # noqa: S608
            "WHERE user_id = %s AND balance_credits + %s >= 0 RETURNING id, balance_credits",
            [delta_credits, timezone.now(), user_id, delta_credits],
        )
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _ensure_account(user_id: int) -> None:
    if CreditAccount.objects.filter(user_id=user_id).exists():
        return
    try:
        with transaction.atomic():
            CreditAccount.objects.create(user_id=user_id)
    except IntegrityError:
        pass  # created by a concurrent transaction


def _entry(
    account_id: int,
    kind: str,
    amount_credits: int,
    balance_after_credits: int,
    *,
    reference: str,
    idempotency_key: str,
    description: str,
) -> LedgerEntry:
    return LedgerEntry(
        account_id=account_id,
        kind=kind,
        amount_credits=amount_credits,
        balance_after_credits=balance_after_credits,
        reference=reference,
        idempotency_key=idempotency_key,
        description=description[:255],
    )


def balance_credits(user: User) -> int:
    return _balance_of(user.pk)


def grant(
    user: User,
    credits: int,
    *,
    description: str,
    idempotency_key: str,
    kind: str = Kind.GRANT,
    reference: str = "",
) -> LedgerEntry:
    """Add credits (a grant, a top-up, a positive adjustment). Once per idempotency key: a
    repeat returns the entry already written."""
    if credits <= 0:
        raise ValueError("A grant adds a positive number of credits")
    _ensure_account(user.pk)
    with transaction.atomic():
        # A move of zero locks the account before we look for an earlier grant with this key.
        locked = _move(user.pk, 0)
        assert locked is not None
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.account_id != locked[0]:
                raise ValueError(f"Idempotency key {idempotency_key!r} belongs to another account")
            return existing
        account_id, balance = _move(user.pk, credits) or locked
        entry = _entry(
            account_id,
            kind,
            credits,
            balance,
            reference=reference,
            idempotency_key=idempotency_key,
            description=description,
        )
        entry.save()
    return entry


def adjust(user: User, credits: int, *, reason: str, operator: str) -> LedgerEntry:
    """An operator's correction, up or down, recorded with who made it and why.

    A correction may not take the balance below zero (InsufficientCredits).
    """
    reason = " ".join(reason.split())
    if credits == 0:
        raise ValueError("An adjustment changes the balance")
    if not reason:
        raise ValueError("An adjustment needs a reason")
    _ensure_account(user.pk)
    with transaction.atomic():
        moved = _move(user.pk, credits)
        if moved is None:
            raise InsufficientCredits(needed_credits=-credits, balance_credits=_balance_of(user.pk))
        account_id, balance = moved
        entry = _entry(
            account_id,
            Kind.ADJUSTMENT,
            credits,
            balance,
            reference=f"adjustment:{operator}"[:100],
            idempotency_key=f"adjustment:{uuid.uuid4()}",
            description=f"{reason} (by {operator})",
        )
        entry.save()
    return entry


def reserve(user_id: int, credits: int, *, reference: str, description: str) -> LedgerEntry:
    """Hold ``credits`` for the work named by ``reference``, or raise InsufficientCredits.

    Called inside the caller's transaction that records the work, so both exist or neither.
    """
    if credits <= 0:
        raise ValueError("A reservation holds a positive number of credits")
    with transaction.atomic():
        moved = _move(user_id, -credits)
        if moved is None:
            raise InsufficientCredits(needed_credits=credits, balance_credits=_balance_of(user_id))
        account_id, balance = moved
        entry = _entry(
            account_id,
            Kind.RESERVE,
            -credits,
            balance,
            reference=reference,
            idempotency_key=f"{reference}:reserve",
            description=description,
        )
        entry.save()
    return entry


def _balance_of(user_id: int) -> int:
    return (
        CreditAccount.objects.filter(user_id=user_id)
        .values_list("balance_credits", flat=True)
        .first()
        or 0
    )


class _AlreadySettled(Exception):
    pass


def settle(
    user_id: int,
    *,
    reference: str,
    reserved_credits: int,
    charged_credits: int,
    description: str,
) -> Settlement | None:
    """Release a reservation and charge what was delivered, once. None if already settled."""
    if not 0 <= charged_credits <= reserved_credits:
        raise ValueError("The charge must be between 0 and the reservation")
    reserve_key, release_key = f"{reference}:reserve", f"{reference}:release"
    try:
        with transaction.atomic():
            # The balance moves first: that locks the account, so the checks below cannot race
            # another settlement, and a failed check rolls the move back with this savepoint.
            moved = _move(user_id, reserved_credits - charged_credits)
            if moved is None:
                raise ValueError(f"No credit account for user {user_id}")
            account_id, balance = moved
            written = dict(
                LedgerEntry.objects.filter(
                    account_id=account_id, idempotency_key__in=[reserve_key, release_key]
                ).values_list("idempotency_key", "amount_credits")
            )
            if release_key in written:
                raise _AlreadySettled
            # Release no more and no less than was held: the caller's figure must match.
            if written.get(reserve_key) != -reserved_credits:
                raise ValueError(f"No reservation of {reserved_credits} credits for {reference}")
            # Two rows, one insert: the release (the balance before the charge), then the charge.
            entries = [
                _entry(
                    account_id,
                    Kind.RELEASE,
                    reserved_credits,
                    balance + charged_credits,
                    reference=reference,
                    idempotency_key=release_key,
                    description=f"Released hold: {description}",
                )
            ]
            if charged_credits:
                entries.append(
                    _entry(
                        account_id,
                        Kind.CHARGE,
                        -charged_credits,
                        balance,
                        reference=reference,
                        idempotency_key=f"{reference}:charge",
                        description=description,
                    )
                )
            LedgerEntry.objects.bulk_create(entries)
    except _AlreadySettled:
        return None
    return Settlement(
        charged_credits=charged_credits,
        released_credits=reserved_credits - charged_credits,
        balance_credits=balance,
    )


# The price table, read at most every PRICE_CACHE_SECONDS per process: every request needs a
# price, and a query for it costs as much as the rest of the quote.
_price_cache: tuple[float, dict[tuple[str, str], int]] = (0.0, {})


def _prices() -> dict[tuple[str, str], int]:
    global _price_cache
    read_at, prices = _price_cache
    now = time.monotonic()
    if now - read_at >= settings.PRICE_CACHE_SECONDS:
        prices = {
            (model, tier): credits
            for model, tier, credits in Price.objects.values_list(
                "model", "size_tier", "credits_per_image"
            )
        }
        _price_cache = (now, prices)
    return prices


def price_per_image(model: str, size_tier: str) -> int:
    """Credits for one delivered image of ``model`` at ``size_tier``, from the price table
    (a tier's own row, else the model's row for any size)."""
    prices = _prices()
    price = prices.get((model, size_tier), prices.get((model, "")))
    if price is None:
        raise UnknownPrice(f"No price for {model} ({size_tier or 'any size'})")
    return price


def price_list() -> list[Price]:
    return list(Price.objects.all())
