"""When an account is told about its money: a low balance, a key's share of its spend cap.

Each alert fires once per crossing. A hold that leaves the balance below the customer's
threshold sets off the low-balance alert (``low_balance_due``, decided from the account row the
request loaded, no query); the worker claims it with a conditional UPDATE, so however many
requests saw the crossing at once, one alert is sent. It is re-armed only when credits coming in
lift the balance back to the threshold (``rearm_low_balance``): a settlement giving back the
unspent part of a hold does not, so a balance hovering at the line is told once. A key's cap
alerts are claimed per window and threshold (``claim_key_budget_alert``): each window of the cap
tells each threshold once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from .models import CreditAccount, SpendWindow


def low_balance_due(account: CreditAccount, *, before_credits: int, after_credits: int) -> bool:
    """Whether a spend from ``before_credits`` to ``after_credits`` should tell the account its
    balance is low: its alert is set and armed, and the balance is now below it."""
    threshold = account.low_balance_alert_credits
    return (
        threshold is not None
        and account.low_balance_alerted_at is None
        and after_credits < threshold
        and after_credits < before_credits
    )


def claim_low_balance_alert(account_id: int, now: datetime | None = None) -> CreditAccount | None:
    """Mark the account's low-balance alert as sent, if it is armed and the balance is below it
    still: the account (the caller sends the alert), or None (sent already, or not due)."""
    claimed = CreditAccount.objects.filter(
        pk=account_id,
        low_balance_alerted_at__isnull=True,
        low_balance_alert_credits__isnull=False,
        balance_credits__lt=F("low_balance_alert_credits"),
    ).update(low_balance_alerted_at=now or timezone.now())
    if not claimed:
        return None
    return CreditAccount.objects.select_related("owner").get(pk=account_id)


def rearm_low_balance(account_id: int) -> None:
    """Credits came in: if they lifted the balance to the alert's threshold, the next fall
    below it tells the account again. Inside the transaction that added them."""
    CreditAccount.objects.filter(
        pk=account_id,
        low_balance_alerted_at__isnull=False,
        balance_credits__gte=F("low_balance_alert_credits"),
    ).update(low_balance_alerted_at=None)


def set_low_balance_alert(account_id: int, threshold_credits: int | None) -> None:
    """The customer's threshold (None: no alert). A new threshold is armed at once: if the
    balance is below it already, the next spend tells them."""
    CreditAccount.objects.filter(pk=account_id).update(
        low_balance_alert_credits=threshold_credits, low_balance_alerted_at=None
    )


def claim_key_budget_alert(window: str, percent: int) -> SpendWindow | None:
    """Mark ``percent`` of the window's cap as told, if no equal or higher threshold was told in
    this window and its spend has reached it: the window (the caller sends the alert), or None.
    """
    claimed = (
        SpendWindow.objects.filter(name=window, alerted_percent__lt=percent)
        .alias(spent_hundredths=F("spent_credits") * 100, reached_at=F("cap_credits") * percent)
        .filter(spent_hundredths__gte=F("reached_at"))
        .update(alerted_percent=percent)
    )
    if not claimed:
        return None
    return SpendWindow.objects.get(name=window)


# The account's thresholds, as its alerts page takes them: a low-balance line of at least one
# credit (a balance never falls below zero) and at most a trillion, and up to five shares of a
# key's cap, each a whole per cent from 1 to 100.
LOW_BALANCE_ALERT_MAX_CREDITS = 1_000_000_000_000
KEY_BUDGET_ALERTS_MAX = 5


class InvalidAlert(ValueError):
    """A threshold an account's alerts cannot take; the message says which and why."""


def check_low_balance_threshold(threshold_credits: int | None) -> int | None:
    """``threshold_credits`` if the low-balance alert can take it (None: no alert)."""
    if threshold_credits is None:
        return None
    if threshold_credits < 1:
        raise InvalidAlert("The alert is at least 1 credit: leave it empty for no alert.")
    if threshold_credits > LOW_BALANCE_ALERT_MAX_CREDITS:
        raise InvalidAlert(f"The alert is at most {LOW_BALANCE_ALERT_MAX_CREDITS:,} credits.")
    return threshold_credits


def check_key_budget_percents(percents: Iterable[int]) -> list[int]:
    """The shares of a key's cap to tell, sorted and each once; InvalidAlert for one outside
    1..100 or more than KEY_BUDGET_ALERTS_MAX of them. Empty: no key-cap alerts."""
    chosen = sorted(set(percents))
    for percent in chosen:
        if not 1 <= percent <= 100:
            raise InvalidAlert(f"{percent}% is not a share of a cap: each is 1 to 100.")
    if len(chosen) > KEY_BUDGET_ALERTS_MAX:
        raise InvalidAlert(f"At most {KEY_BUDGET_ALERTS_MAX} thresholds.")
    return chosen


def set_key_budget_alerts(account_id: int, percents: Iterable[int]) -> list[int]:
    """The shares of a key's cap at which the account is told (checked, sorted); what was
    saved. A window that has told a threshold already tells only higher ones after this."""
    chosen = check_key_budget_percents(percents)
    CreditAccount.objects.filter(pk=account_id).update(key_budget_alert_percents=chosen)
    return chosen
