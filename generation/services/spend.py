"""A key's spend controls, applied to a generation: its model allowlist before anything is
counted, and its spend cap in the same step as the hold (billing counts it: billing/limits.py).
The alerts a hold may set off (a key's share of its cap, the account's low balance) are sent
from here, after the hold, to the workers."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing import auto_top_up
from billing import services as billing
from billing.limits import Limit, SpendCapReached, crossed_percents, limit_for
from billing.models import CreditAccount, SpendWindow
from keys import controls
from keys.models import ApiKey

from ..refusals import Reason, Refusal

logger = logging.getLogger(__name__)


def key_limit(api_key: ApiKey | None, at: datetime) -> Limit | None:
    """The window of ``api_key``'s cap that a hold made ``at`` counts in (None: no cap)."""
    if api_key is None or api_key.spend_cap_credits is None:
        return None
    holder = f"{_KEY_HOLDER}{api_key.pk}"
    return limit_for(holder, api_key.spend_cap_period, api_key.spend_cap_credits, at)


# How a key names itself as the holder of a cap's windows (``key:42:day:2026-12-06``).
_KEY_HOLDER = "key:"


def key_id_of_window(window: str) -> int:
    """The id of the key whose cap ``window`` (a name ``key_limit`` gave) belongs to."""
    return int(window.removeprefix(_KEY_HOLDER).split(":", 1)[0])


def check_model_allowed(api_key: ApiKey | None, model_id: str) -> None:
    """Refusal(MODEL_NOT_ALLOWED) for a model outside the key's allowlist."""
    if api_key is None or controls.model_allowed(api_key, model_id):
        return
    allowed = ", ".join(api_key.allowed_models)
    raise Refusal(
        Reason.MODEL_NOT_ALLOWED,
        f"This API key may not use {model_id}: it is limited to {allowed}. Change the key's "
        f"allowed models at {_key_page(api_key)}, or use another key.",
        param="model",
    )


def cap_refusal(reached: SpendCapReached, api_key: ApiKey) -> Refusal:
    """What a customer is told when a hold would pass the key's cap."""
    limit = reached.limit
    when = (
        f"It resets at {limit.resets_at:%Y-%m-%d %H:%M} UTC."
        if limit.resets_at is not None
        else "It is a cap in total and does not reset."
    )
    period = "in total" if limit.period == "total" else f"per {limit.period} (UTC)"
    return Refusal(
        Reason.KEY_BUDGET_EXCEEDED,
        f"This API key's spend cap is reached: it may spend {limit.cap_credits:,} credits "
        f"{period}, {reached.remaining_credits:,} remain and this request holds "
        f"{reached.needed_credits:,}. {when} Raise the cap at {_key_page(api_key)}.",
    )


def _key_page(api_key: ApiKey) -> str:
    return f"{settings.SITE_URL}{reverse('dashboard:key-spend', args=[api_key.pk])}"


def alerts_due(
    account: CreditAccount | None,
    *,
    balance_before_credits: int,
    balance_after_credits: int,
    counted: billing.limits.Counted | None,
) -> list[tuple[str, tuple[object, ...]]]:
    """The tasks a hold sets off, as (task name, arguments): the alerts and an automatic
    top-up. None for nearly every hold, decided from the account row loaded with the key (no
    query)."""
    due: list[tuple[str, tuple[object, ...]]] = []
    if account is not None and billing.low_balance_due(
        account, before_credits=balance_before_credits, after_credits=balance_after_credits
    ):
        due.append(("low_balance", (account.pk,)))
    if account is not None and auto_top_up.crossed(
        account, before_credits=balance_before_credits, after_credits=balance_after_credits
    ):
        due.append(("auto_top_up", (account.pk,)))
    if counted is not None and account is not None:
        percent = crossed_percents(
            list(account.key_budget_alert_percents or []),
            counted.limit.cap_credits,
            counted.spent_before_credits,
            counted.spent_after_credits,
        )
        if percent > counted.alerted_percent:
            due.append(("key_budget", (counted.limit.window, percent)))
    return due


def key_budget_headers(api_key: ApiKey) -> dict[str, str]:
    """What every answer to a capped key says of its cap: the cap, and what is left of it in
    the current window (held credits of requests still running count as spent), and when the
    window resets (none for a cap in total). One query; none for a key without a cap."""
    limit = key_limit(api_key, timezone.now())
    if limit is None:
        return {}
    spent = (
        SpendWindow.objects.filter(name=limit.window)
        .values_list("spent_credits", flat=True)
        .first()
    ) or 0
    headers = {
        "x-key-budget-limit": str(limit.cap_credits),
        "x-key-budget-remaining": str(max(0, limit.cap_credits - spent)),
    }
    if limit.resets_at is not None:
        headers["x-key-budget-reset"] = limit.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return headers
