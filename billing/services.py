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
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import User

from .models import (
    CreditAccount,
    DebtEntry,
    LedgerEntry,
    Price,
    PromoCode,
    PromoRedemption,
    normalise_code,
)

Kind = LedgerEntry.Kind


class BillingError(Exception):
    pass


class InsufficientCredits(BillingError):
    def __init__(self, *, needed_credits: int, balance_credits: int) -> None:
        super().__init__(f"needs {needed_credits} credits, balance is {balance_credits}")
        self.needed_credits = needed_credits
        self.balance_credits = balance_credits


class CreditsOwed(InsufficientCredits):
    """The account owes credits after a refund or dispute: no new work until they are paid."""

    def __init__(self, *, needed_credits: int, balance_credits: int, owed_credits: int) -> None:
        super().__init__(needed_credits=needed_credits, balance_credits=balance_credits)
        self.args = (f"owes {owed_credits} credits after a refund or dispute",)
        self.owed_credits = owed_credits


class UnknownPrice(BillingError):
    pass


class PromoCodeRefused(BillingError):
    """A code that cannot be redeemed; the message is meant for the customer."""


@dataclass(frozen=True)
class Reversal:
    """Credits a refund or dispute took back: ``taken`` from the balance, ``owed`` beyond it."""

    taken_credits: int
    owed_credits: int
    balance_credits: int


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


def _move(
    user_id: int, delta_credits: int, *, unless_owing: bool = False
) -> tuple[int, int] | None:
    """Add ``delta_credits`` to the user's balance unless that would take it below zero (or,
    with ``unless_owing``, unless the account owes credits).

    One statement checks, changes and locks the account row until the transaction ends, and
    returns (account id, new balance); None when there is no account or the check fails.
    Raw SQL because the ORM cannot say UPDATE ... RETURNING (PostgreSQL and SQLite 3.35+ can),
    and because this is the hottest statement of every request.
    """
    table = CreditAccount._meta.db_table
    owing = " AND owed_credits = 0" if unless_owing else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET balance_credits = balance_credits + %s, updated_at = %s "  # noqa: S608
            f"WHERE user_id = %s AND balance_credits + %s >= 0{owing} "
            "RETURNING id, balance_credits",
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
    """Add credits (a grant, a top-up, a promotion code). Once per idempotency key: a repeat
    returns the entry already written. If the account owes credits, they are paid first, in the
    same transaction (a ``debt_payment`` line after this one)."""
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
        CreditAccount.objects.filter(pk=account_id).update(
            lifetime_credits=F("lifetime_credits") + credits
        )
        _pay_debt(account_id, balance, user_id=user.pk, idempotency_key=idempotency_key)
    return entry


def _pay_debt(account_id: int, balance: int, *, user_id: int, idempotency_key: str) -> None:
    """Inside the caller's transaction, with the account locked: pay what the account owes from
    its balance, as far as the balance goes."""
    owed = CreditAccount.objects.filter(pk=account_id).values_list("owed_credits", flat=True)[0]
    paid = min(owed, balance)
    if paid <= 0:
        return
    moved = _move(user_id, -paid)
    assert moved is not None
    still_owed = owed - paid
    CreditAccount.objects.filter(pk=account_id).update(owed_credits=still_owed)
    key = f"{idempotency_key}:debt"
    description = f"Paid {paid} credits owed after a refund or dispute" + (
        f" ({still_owed} still owed)" if still_owed else ""
    )
    _entry(
        account_id,
        Kind.DEBT_PAYMENT,
        -paid,
        moved[1],
        reference="debt",
        idempotency_key=key,
        description=description,
    ).save()
    DebtEntry(
        account_id=account_id,
        amount_credits=-paid,
        owed_after_credits=still_owed,
        reference="debt",
        idempotency_key=key,
        description=description,
    ).save()


def debt_credits(user_id: int) -> int:
    """Credits the user's account owes after a refund or dispute (0 when none)."""
    return (
        CreditAccount.objects.filter(user_id=user_id).values_list("owed_credits", flat=True).first()
        or 0
    )


def take_back(
    user_id: int, credits: int, *, reference: str, idempotency_key: str, description: str
) -> Reversal | None:
    """Take back credits a refunded or disputed payment had bought. Once per idempotency key
    (None for a repeat).

    What the balance cannot cover is recorded as owed (a DebtEntry, and the account's
    ``owed_credits``): the API refuses new work until credits arriving later have paid it.
    The ledger line shows what left the balance, which may be nothing.
    """
    if credits <= 0:
        raise ValueError("A reversal takes back a positive number of credits")
    _ensure_account(user_id)
    with transaction.atomic():
        locked = _move(user_id, 0)
        assert locked is not None
        account_id, balance = locked
        if LedgerEntry.objects.filter(idempotency_key=idempotency_key).exists():
            return None
        taken = min(credits, balance)
        owed = credits - taken
        CreditAccount.objects.filter(pk=account_id).update(
            lifetime_credits=Greatest(F("lifetime_credits") - credits, Value(0))
        )
        if taken:
            moved = _move(user_id, -taken)
            assert moved is not None
            balance = moved[1]
        detail = f"{credits} credits taken back"
        if owed:
            detail += f", {owed} of them owed because the balance could not cover them"
        _entry(
            account_id,
            Kind.REVERSAL,
            -taken,
            balance,
            reference=reference,
            idempotency_key=idempotency_key,
            description=f"{description}: {detail}",
        ).save()
        if owed:
            total_owed = (
                CreditAccount.objects.filter(pk=account_id).values_list("owed_credits", flat=True)[
                    0
                ]
                + owed
            )
            CreditAccount.objects.filter(pk=account_id).update(owed_credits=total_owed)
            DebtEntry(
                account_id=account_id,
                amount_credits=owed,
                owed_after_credits=total_owed,
                reference=reference,
                idempotency_key=idempotency_key,
                description=description,
            ).save()
    return Reversal(taken_credits=taken, owed_credits=owed, balance_credits=balance)


def credits_for_cents(amount_cents: int) -> int:
    """Credits an amount buys: whole credits, rounded down, the same integers as the ledger."""
    return amount_cents * settings.CREDITS_PER_USD // 100


def redeem_promo_code(user: User, code: str) -> LedgerEntry:
    """Add a promotion code's credits to the user's account: once per account, never beyond the
    code's uses, never after it expires (PromoCodeRefused says why, for the customer).

    The use is counted by a conditional UPDATE and the redemption row is unique per account, both
    in the transaction that writes the ledger line: two redemptions at once cannot both pass.
    """
    typed = normalise_code(code)
    promo = PromoCode.objects.filter(code__iexact=typed).first() if typed else None
    if promo is None or not promo.active:
        raise PromoCodeRefused("That promotion code does not exist.")
    now = timezone.now()
    if promo.expires_at is not None and promo.expires_at <= now:
        raise PromoCodeRefused("That promotion code has expired.")
    _ensure_account(user.pk)
    account_id = CreditAccount.objects.values_list("pk", flat=True).get(user_id=user.pk)
    try:
        with transaction.atomic():
            counted = (
                PromoCode.objects.filter(
                    pk=promo.pk, active=True, times_redeemed__lt=F("max_redemptions")
                )
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
                .update(times_redeemed=F("times_redeemed") + 1)
            )
            if not counted:
                raise PromoCodeRefused("That promotion code has been used up.")
            PromoRedemption.objects.create(
                promo_code=promo, account_id=account_id, credits=promo.credits
            )
            return grant(
                user,
                promo.credits,
                kind=Kind.PROMO,
                description=f"Promotion code {promo.code}",
                idempotency_key=f"promo:{promo.pk}:{account_id}",
                reference=f"promo:{promo.pk}",
            )
    except IntegrityError:
        # The unique (code, account) pair: this account redeemed it already (perhaps a moment
        # ago, in a concurrent request). The count above was rolled back with it.
        raise PromoCodeRefused("You have already redeemed that promotion code.") from None


def adjust(user: User, credits: int, *, reason: str, operator: str) -> LedgerEntry:
    """An operator's correction, up or down, recorded with who made it and why.

    A correction may not take the balance below zero (InsufficientCredits). Credits added pay
    what the account owes first, like any others.
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
        if credits > 0:
            _pay_debt(account_id, balance, user_id=user.pk, idempotency_key=entry.idempotency_key)
    return entry


def reserve(user_id: int, credits: int, *, reference: str, description: str) -> LedgerEntry:
    """Hold ``credits`` for the work named by ``reference``, or raise InsufficientCredits
    (CreditsOwed, a kind of it, while the account owes credits after a refund or dispute).

    Called inside the caller's transaction that records the work, so both exist or neither.
    """
    if credits <= 0:
        raise ValueError("A reservation holds a positive number of credits")
    with transaction.atomic():
        moved = _move(user_id, -credits, unless_owing=True)
        if moved is None:
            balance, owed = (
                CreditAccount.objects.filter(user_id=user_id)
                .values_list("balance_credits", "owed_credits")
                .first()
            ) or (0, 0)
            if owed:
                raise CreditsOwed(
                    needed_credits=credits, balance_credits=balance, owed_credits=owed
                )
            raise InsufficientCredits(needed_credits=credits, balance_credits=balance)
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


def cached_price_per_image(model: str, size_tier: str) -> int | None:
    """``price_per_image`` from the cached price list, never a query: None when the list is due
    for a refresh or has no such price (for a caller on an event loop, which then asks
    ``price_per_image`` on a thread)."""
    read_at, prices = _price_cache
    if time.monotonic() - read_at >= settings.PRICE_CACHE_SECONDS:
        return None
    return prices.get((model, size_tier), prices.get((model, "")))


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
