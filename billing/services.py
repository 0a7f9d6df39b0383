"""Every change to a balance. Each is atomic, locks the account row, and appends ledger rows.

The balance changes only here, in the same transaction as the ledger row that explains it, so the
balance always equals the sum of the account's ledger.

A generation's money moves in three steps, each a ledger line the customer can see:
``reserve`` (-price of everything asked for) when it starts; at the end ``release`` (+the same
amount) and ``charge`` (-price of what was delivered), written together in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

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


def _locked_account(user_id: int) -> CreditAccount:
    """The user's account, locked until the transaction ends; created on first use."""
    account = CreditAccount.objects.select_for_update().filter(user_id=user_id).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            CreditAccount.objects.create(user_id=user_id)
    except IntegrityError:
        pass  # created by a concurrent transaction: lock theirs
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def _append(
    account: CreditAccount,
    kind: str,
    amount_credits: int,
    *,
    reference: str,
    idempotency_key: str,
    description: str,
) -> LedgerEntry:
    account.balance_credits += amount_credits
    # The CHECK constraint on the balance is the last line of defence; callers check first.
    CreditAccount.objects.filter(pk=account.pk).update(balance_credits=account.balance_credits)
    return LedgerEntry.objects.create(
        account=account,
        kind=kind,
        amount_credits=amount_credits,
        balance_after_credits=account.balance_credits,
        reference=reference,
        idempotency_key=idempotency_key,
        description=description[:255],
    )


def balance_credits(user: User) -> int:
    account = CreditAccount.objects.filter(user=user).only("balance_credits").first()
    return account.balance_credits if account else 0


@transaction.atomic
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
    account = _locked_account(user.pk)
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.account_id != account.pk:
            raise ValueError(f"Idempotency key {idempotency_key!r} belongs to another account")
        return existing
    return _append(
        account,
        kind,
        credits,
        reference=reference,
        idempotency_key=idempotency_key,
        description=description,
    )


@transaction.atomic
def reserve(user_id: int, credits: int, *, reference: str, description: str) -> LedgerEntry:
    """Hold ``credits`` for the work named by ``reference``, or raise InsufficientCredits.

    Called inside the caller's transaction that records the work, so both exist or neither.
    """
    if credits <= 0:
        raise ValueError("A reservation holds a positive number of credits")
    account = _locked_account(user_id)
    if account.balance_credits < credits:
        raise InsufficientCredits(needed_credits=credits, balance_credits=account.balance_credits)
    return _append(
        account,
        Kind.RESERVE,
        -credits,
        reference=reference,
        idempotency_key=f"{reference}:reserve",
        description=description,
    )


@transaction.atomic
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
    account = _locked_account(user_id)
    release_key = f"{reference}:release"
    # Every ledger write for this account holds the account lock, so this check cannot race.
    if LedgerEntry.objects.filter(idempotency_key=release_key).exists():
        return None
    # Release no more and no less than was held: the caller's figure must match the ledger's.
    held = LedgerEntry.objects.filter(
        account=account, idempotency_key=f"{reference}:reserve"
    ).first()
    if held is None or -held.amount_credits != reserved_credits:
        raise ValueError(f"No reservation of {reserved_credits} credits for {reference}")
    _append(
        account,
        Kind.RELEASE,
        reserved_credits,
        reference=reference,
        idempotency_key=release_key,
        description=f"Released hold: {description}",
    )
    if charged_credits:
        _append(
            account,
            Kind.CHARGE,
            -charged_credits,
            reference=reference,
            idempotency_key=f"{reference}:charge",
            description=description,
        )
    return Settlement(
        charged_credits=charged_credits,
        released_credits=reserved_credits - charged_credits,
        balance_credits=account.balance_credits,
    )


def price_per_image(model: str, size_tier: str) -> int:
    """Credits for one delivered image of ``model`` at ``size_tier``, from the price table."""
    prices = {
        p.size_tier: p.credits_per_image
        for p in Price.objects.filter(model=model, size_tier__in=[size_tier, ""])
    }
    price = prices.get(size_tier, prices.get(""))
    if price is None:
        raise UnknownPrice(f"No price for {model} ({size_tier or 'any size'})")
    return price


def price_list() -> list[Price]:
    return list(Price.objects.all())
