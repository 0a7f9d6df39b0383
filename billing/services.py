"""Every change to a balance. Each is atomic, locks the account row, and appends ledger rows.

The balance changes only here (and in the PostgreSQL form of the same moves, ``statements``), in
the same transaction as the ledger rows that explain it, so the balance always equals the sum of
the account's ledger. What each move writes is defined once, in ``moves``; this module is the
ORM's implementation of those definitions, for every database.

A generation's money moves in two steps, each with ledger lines the customer can see: ``hold``
(``reserve``: -the quote's price of everything asked for) when it starts; at the end ``settle``
(``release``: +the same amount, and ``charge``: -the quote's price of what was delivered, at
the size delivered, its description saying how it was priced), written together in one
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import Account, User
from accounts.services import personal_account

from . import alerts, limits, moves
from .alerts import low_balance_due  # noqa: F401 (the hot path asks it after a hold)
from .errors import (  # noqa: F401 (raised here; callers catch them from here)
    BillingError,
    CreditsOwed,
    InsufficientCredits,
    PromoCodeRefused,
    UnknownPrice,
)
from .limits import Limit, SpendCapReached, limit_for  # noqa: F401 (callers use them)
from .models import (
    CreditAccount,
    DebtEntry,
    LedgerEntry,
    PromoCode,
    PromoRedemption,
    SpendWindow,
    normalise_code,
)
from .money import format_credits, format_usd_for_people  # noqa: F401 (for pages)
from .pricing import (  # noqa: F401 (the money API callers use, in one place)
    Delivered,
    Quote,
    Rule,
    Tier,
    cached_quote,
    charged_credits,
    credits_for_cents,
    credits_to_usd,
    format_usd,
    price_rule,
    price_rules,
    quote,
)

Kind = LedgerEntry.Kind


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


def _move(
    owner_id: int, delta_credits: int, *, unless_owing: bool = False, now: datetime | None = None
) -> tuple[int, int] | None:
    """Add ``delta_credits`` to the balance of the account ``owner_id`` unless that would take
    it below zero (or, with ``unless_owing``, unless the account owes credits).

    One statement checks, changes and locks the account row until the transaction ends, and
    returns (account id, new balance); None when there is no account or the check fails.
    Raw SQL because the ORM cannot say UPDATE ... RETURNING (PostgreSQL and SQLite 3.35+ can).
    """
    table = CreditAccount._meta.db_table
    owing = " AND owed_credits = 0" if unless_owing else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET balance_credits = balance_credits + %s, updated_at = %s "  # noqa: S608
            f"WHERE owner_id = %s AND balance_credits + %s >= 0{owing} "
            "RETURNING id, balance_credits",
            [delta_credits, now or timezone.now(), owner_id, delta_credits],
        )
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _write(
    move: moves.Move,
    quantities: Mapping[str, int],
    texts: Mapping[str, str],
    moved: tuple[int, int],
    now: datetime | None = None,
) -> list[LedgerEntry]:
    """Inside the caller's transaction, once the balance has moved (``moved``: the account and
    its new balance): append the move's ledger lines, in order."""
    account_id, balance = moved
    rows = [
        LedgerEntry(
            account_id=account_id,
            reference=texts["reference"],
            created_at=now or timezone.now(),
            **asdict(entry),
        )
        for entry in moves.entries(move, quantities, texts, balance)
    ]
    if len(rows) == 1:
        rows[0].save()
    else:
        LedgerEntry.objects.bulk_create(rows)
    return rows


def _make(
    move: moves.Move,
    owner_id: int,
    quantities: Mapping[str, int],
    texts: Mapping[str, str],
    now: datetime | None = None,
) -> tuple[tuple[int, int], list[LedgerEntry]] | None:
    """Make ``move`` inside the caller's transaction: the balance moved and the lines written;
    None, with nothing written, when the balance cannot cover it (or the account owes)."""
    move.check(quantities)
    moved = _move(owner_id, move.delta(quantities), unless_owing=move.unless_owing, now=now)
    if moved is None:
        return None
    return moved, _write(move, quantities, texts, moved, now)


def _lock(owner_id: int) -> tuple[int, int]:
    """Inside the caller's transaction: lock the credit account of ``owner_id`` (a move of zero) and
    return (account id, balance)."""
    locked = _move(owner_id, 0)
    assert locked is not None, f"no credit account for account {owner_id}"
    return locked


def balance_credits(owner: Account) -> int:
    return _balance_of(owner.pk)


def grant(
    owner: Account,
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
    move = moves.CREDIT[Kind(kind)]
    CreditAccount.objects.of(owner.pk)
    with transaction.atomic():
        # Locked before we look for an earlier grant with this key.
        account_id, _ = _lock(owner.pk)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.account_id != account_id:
                raise ValueError(f"Idempotency key {idempotency_key!r} belongs to another account")
            return existing
        texts = {"reference": reference, "key": idempotency_key, "description": description}
        made = _make(move, owner.pk, {"credits": credits}, texts)
        assert made is not None  # a move that adds is never refused
        (account_id, balance), (entry,) = made
        CreditAccount.objects.filter(pk=account_id).update(
            lifetime_credits=F("lifetime_credits") + credits
        )
        _pay_debt(account_id, balance, owner_id=owner.pk, idempotency_key=idempotency_key)
        alerts.rearm_low_balance(account_id)
    return entry


def signup_credits_key(user_id: int) -> str:
    """The idempotency key of a user's sign-up credits: one per account, so the ledger's unique
    key is what makes the grant happen at most once, whatever races or repeats."""
    return f"signup:{user_id}"


def grant_signup_credits(user_id: int, *, credits: int | None = None) -> LedgerEntry | None:
    """Give a new user's personal account its trial credits (``SIGNUP_CREDITS`` unless
    ``credits`` says), once.

    Called when the account's email address is verified (billing.receivers). A second
    confirmation, a re-verified or added address, or two confirmations at once find the line
    already written (the ledger's UNIQUE idempotency key, checked under the account's row lock)
    and return it: the account never gets them twice. None when the installation gives none.
    """
    credits = settings.SIGNUP_CREDITS if credits is None else credits
    if credits <= 0:
        return None
    return grant(
        personal_account(User.objects.get(pk=user_id)),
        credits,
        description="Sign-up credits",
        idempotency_key=signup_credits_key(user_id),
        reference="signup",
    )


def _pay_debt(account_id: int, balance: int, *, owner_id: int, idempotency_key: str) -> None:
    """Inside the caller's transaction, with the account locked: pay what the account owes from
    its balance, as far as the balance goes."""
    owed = CreditAccount.objects.filter(pk=account_id).values_list("owed_credits", flat=True)[0]
    paid = min(owed, balance)
    if paid <= 0:
        return
    still_owed = owed - paid
    description = f"Paid {paid} credits owed after a refund or dispute" + (
        f" ({still_owed} still owed)" if still_owed else ""
    )
    texts = {"reference": "debt", "key": idempotency_key, "description": description}
    made = _make(moves.DEBT_PAYMENT, owner_id, {"paid_credits": paid}, texts)
    assert made is not None  # paid is at most the balance
    _, (entry,) = made
    CreditAccount.objects.filter(pk=account_id).update(owed_credits=still_owed)
    DebtEntry(
        account_id=account_id,
        amount_credits=-paid,
        owed_after_credits=still_owed,
        reference="debt",
        idempotency_key=entry.idempotency_key,
        description=description,
    ).save()


def debt_credits(owner_id: int) -> int:
    """Credits the account owes after a refund or dispute (0 when none)."""
    return (
        CreditAccount.objects.filter(owner_id=owner_id)
        .values_list("owed_credits", flat=True)
        .first()
        or 0
    )


def take_back(
    owner_id: int, credits: int, *, reference: str, idempotency_key: str, description: str
) -> Reversal | None:
    """Take back credits a refunded or disputed payment had bought. Once per idempotency key
    (None for a repeat).

    What the balance cannot cover is recorded as owed (a DebtEntry, and the account's
    ``owed_credits``): the API refuses new work until credits arriving later have paid it.
    The ledger line shows what left the balance, which may be nothing.
    """
    if credits <= 0:
        raise ValueError("A reversal takes back a positive number of credits")
    CreditAccount.objects.of(owner_id)
    with transaction.atomic():
        account_id, balance = _lock(owner_id)
        if LedgerEntry.objects.filter(idempotency_key=idempotency_key).exists():
            return None
        taken = min(credits, balance)
        owed = credits - taken
        CreditAccount.objects.filter(pk=account_id).update(
            lifetime_credits=Greatest(F("lifetime_credits") - credits, Value(0))
        )
        detail = f"{credits} credits taken back"
        if owed:
            detail += f", {owed} of them owed because the balance could not cover them"
        texts = {
            "reference": reference,
            "key": idempotency_key,
            "description": f"{description}: {detail}",
        }
        made = _make(moves.REVERSAL, owner_id, {"taken_credits": taken}, texts)
        assert made is not None  # taken is at most the balance
        (_, balance), _ = made
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


def give_back(
    owner: Account, credits: int, *, reference: str, idempotency_key: str, description: str
) -> LedgerEntry:
    """Give back credits ``take_back`` took, because the refund failed or the dispute was won.
    Once per idempotency key. Like any credits arriving, they pay first what the account owes
    (which is where a reversal the balance could not cover went), and they count again towards
    the account's lifetime credits, which the reversal had lowered."""
    return grant(
        owner,
        credits,
        kind=Kind.REINSTATED,
        description=description,
        idempotency_key=idempotency_key,
        reference=reference,
    )


def redeem_promo_code(owner: Account, code: str, *, by: User | None = None) -> LedgerEntry:
    """Add a promotion code's credits to the account, redeemed by its member ``by`` (for a
    personal account, its person unless said): once per account and once per person, never
    beyond the code's uses, never after it expires (PromoCodeRefused, with the reason for the
    logs).

    The use is counted by a conditional UPDATE and the redemption row is unique per account and
    per person, both
    in the transaction that writes the ledger line: two redemptions at once cannot both pass.
    """
    typed = normalise_code(code)
    promo = PromoCode.objects.filter(code__iexact=typed).first() if typed else None
    if promo is None or not promo.active:
        raise PromoCodeRefused("unknown")
    now = timezone.now()
    if promo.expires_at is not None and promo.expires_at <= now:
        raise PromoCodeRefused("expired")
    CreditAccount.objects.of(owner.pk)
    account_id = CreditAccount.objects.values_list("pk", flat=True).get(owner_id=owner.pk)
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
                raise PromoCodeRefused("used_up")
            PromoRedemption.objects.create(
                promo_code=promo,
                account_id=account_id,
                # The redeeming member (a person's own account: that person).
                user=by or owner.personal_owner,
                credits=promo.credits,
            )
            return grant(
                owner,
                promo.credits,
                kind=Kind.PROMO,
                description=f"Promotion code {promo.code}",
                idempotency_key=f"promo:{promo.pk}:{account_id}",
                reference=f"promo:{promo.pk}",
            )
    except IntegrityError:
        # The unique (code, account) or (code, person) pair: this account, or this person for
        # another account, redeemed it already (perhaps a moment ago, in a concurrent request).
        # The count above was rolled back with it.
        raise PromoCodeRefused("already_redeemed") from None


def adjust(owner: Account, credits: int, *, reason: str, operator: str) -> LedgerEntry:
    """An operator's correction, up or down, recorded with who made it and why.

    A correction may not take the balance below zero (InsufficientCredits). Credits added pay
    what the account owes first, like any others.
    """
    reason = " ".join(reason.split())
    if credits == 0:
        raise ValueError("An adjustment changes the balance")
    if not reason:
        raise ValueError("An adjustment needs a reason")
    CreditAccount.objects.of(owner.pk)
    texts = {
        "reference": f"adjustment:{operator}"[:100],
        "key": f"adjustment:{uuid.uuid4()}",
        "description": f"{reason} (by {operator})",
    }
    with transaction.atomic():
        made = _make(moves.ADJUSTMENT, owner.pk, {"credits": credits}, texts)
        if made is None:
            raise InsufficientCredits(
                needed_credits=-credits, balance_credits=_balance_of(owner.pk)
            )
        (account_id, balance), (entry,) = made
        if credits > 0:
            _pay_debt(account_id, balance, owner_id=owner.pk, idempotency_key=entry.idempotency_key)
            alerts.rearm_low_balance(account_id)
    return entry


@dataclass(frozen=True)
class Held:
    """A hold made: its ledger line, the balance before it, and (for a capped spender) what
    its window had spent before and after it."""

    entry: LedgerEntry
    balance_before_credits: int
    window: limits.Counted | None = None


def hold(
    owner_id: int,
    quantities: Mapping[str, int],
    *,
    reference: str,
    description: str,
    limit: Limit | None = None,
    now: datetime | None = None,
) -> Held:
    """Hold credits for the work named by ``reference`` (``quantities``: ``Quote.hold()``), or
    raise InsufficientCredits (CreditsOwed, a kind of it, while the account owes credits after
    a refund or dispute). With ``limit``, the hold is counted in the spender's window too, and
    refused (SpendCapReached, nothing held) if it would pass the cap.

    Called inside the caller's transaction that records the work, so both exist or neither.
    """
    if quantities.get("held_credits", 0) <= 0:
        raise ValueError("A hold takes a positive number of credits")
    texts = {"reference": reference, "description": description}
    with transaction.atomic():
        made = _make(moves.HOLD, owner_id, quantities, texts, now)
        if made is not None and limit is not None:
            counted = _count_in_window(limit, quantities["held_credits"], now or timezone.now())
            return Held(made[1][0], made[0][1] + quantities["held_credits"], counted)
        if made is None:
            needed = -moves.HOLD.delta(quantities)
            balance, owed = (
                CreditAccount.objects.filter(owner_id=owner_id)
                .values_list("balance_credits", "owed_credits")
                .first()
            ) or (0, 0)
            if owed:
                raise CreditsOwed(needed_credits=needed, balance_credits=balance, owed_credits=owed)
            raise InsufficientCredits(needed_credits=needed, balance_credits=balance)
        (_, balance_after), (entry,) = made
    return Held(entry, balance_after + quantities["held_credits"])


def _count_in_window(limit: Limit, held_credits: int, now: datetime) -> limits.Counted:
    """Inside the hold's transaction: add the hold to its window, or raise SpendCapReached
    (rolling the hold back with the caller's savepoint) when the database's check refuses it."""
    table = connection.ops.quote_name(SpendWindow._meta.db_table)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                limits.COUNT_SQL.format(table=table, rows=limits.COUNT_VALUES),
                limits.count_params(limit, held_credits, now),
            )
            spent_after, alerted = cursor.fetchone()
    except IntegrityError as exc:
        if not limits.is_cap_refusal(exc):
            raise
        spent = (
            SpendWindow.objects.filter(name=limit.window)
            .values_list("spent_credits", flat=True)
            .first()
        ) or 0
        raise SpendCapReached(limit, needed_credits=held_credits, spent_credits=spent) from None
    return limits.Counted(
        limit,
        spent_before_credits=spent_after - held_credits,
        spent_after_credits=spent_after,
        alerted_percent=alerted,
    )


def give_back_to_window(window: str, credits: int, *, now: datetime | None = None) -> None:
    """A settlement's part for a capped spender: what it held but did not charge goes back to
    its window (never below nothing)."""
    if not window or credits <= 0:
        return
    SpendWindow.objects.filter(name=window).update(
        spent_credits=Greatest(F("spent_credits") - credits, Value(0)),
        updated_at=now or timezone.now(),
    )


def _balance_of(owner_id: int) -> int:
    return (
        CreditAccount.objects.filter(owner_id=owner_id)
        .values_list("balance_credits", flat=True)
        .first()
        or 0
    )


class _AlreadySettled(Exception):
    pass


def settle(
    owner_id: int,
    quantities: Mapping[str, int],
    *,
    reference: str,
    description: str,
    charged_as: str = "",
    spend_window: str = "",
    now: datetime | None = None,
) -> Settlement | None:
    """Release a hold and charge what was delivered (``quantities``: ``Quote.settlement(...)``,
    ``charged_as``: ``Quote.charged_as(...)``, added to the charge line's description), once;
    what was held but not charged goes back to ``spend_window`` (the hold's ``Limit.window``)
    too. None if already settled; ValueError if there is no such hold."""
    move = moves.SETTLE
    move.check(quantities)
    held = quantities["held_credits"]
    charged = charged_credits(quantities)
    if not 0 <= charged <= held:
        raise ValueError("The charge must be between 0 and the hold")
    texts = {"reference": reference, "description": description, "charged_as": charged_as}
    assert move.settles is not None
    try:
        with transaction.atomic():
            # The balance moves first: that locks the account, so the checks below cannot race
            # another settlement, and a failed check rolls the move back with this savepoint.
            moved = _move(owner_id, move.delta(quantities), now=now)
            if moved is None:
                raise ValueError(f"No credit account for account {owner_id}")
            expected = {
                entry.idempotency_key: entry.amount_credits
                for entry in moves.entries(move.settles, quantities, texts, 0)
            }
            own_key = moves.render(move.lines[0].key, texts)
            written = dict(
                LedgerEntry.objects.filter(
                    account_id=moved[0], idempotency_key__in=[*expected, own_key]
                ).values_list("idempotency_key", "amount_credits")
            )
            if own_key in written:
                raise _AlreadySettled
            # Release no more and no less than was held: the caller's figures must match.
            if any(written.get(key) != amount for key, amount in expected.items()):
                raise ValueError(f"No reservation of {held} credits for {reference}")
            _write(move, quantities, texts, moved, now)
            give_back_to_window(spend_window, held - charged, now=now)
    except _AlreadySettled:
        return None
    return Settlement(
        charged_credits=charged,
        released_credits=held - charged,
        balance_credits=moved[1],
    )
