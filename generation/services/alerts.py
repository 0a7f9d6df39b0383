"""The alerts a hold sets off, sent by a worker: the account's low balance (an email and a
``credits.low`` webhook event) and a key's share of its spend cap (an email).

billing decides when each is due and claims it once (billing/alerts.py); this module only says
it. A failure to email is logged: the alert stays claimed (told once, never twice), and the
webhook event is recorded before the email is tried.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from billing import alerts as billing_alerts
from billing import services as billing
from keys.models import ApiKey
from webhooks import events
from webhooks import services as webhooks

from .spend import key_id_of_window

logger = logging.getLogger(__name__)


def send_low_balance_alert(account_id: int) -> bool:
    """Tell the account its balance fell below its alert, once per crossing. False if it was
    told already (another worker, or a repeat) or the balance is above it again."""
    account = billing_alerts.claim_low_balance_alert(account_id)
    if account is None:
        return False
    threshold = account.low_balance_alert_credits or 0
    balance = account.balance_credits
    webhooks.publish(
        account.owner,
        events.CREDITS_LOW,
        {
            "object": "credits.balance",
            "balance_credits": balance,
            "threshold_credits": threshold,
        },
        # One event per crossing: the claim's time names it.
        event_key=f"credits.low:{account.pk}:{account.low_balance_alerted_at:%Y%m%dT%H%M%S%f}",
    )
    billing_page = f"{settings.SITE_URL}{reverse('billing:ledger')}"
    alerts_page = f"{settings.SITE_URL}{reverse('dashboard:alerts')}"
    _email(
        account.owner.contact_emails(),
        "Your credit balance is low",
        f"Your {settings.SITE_NAME} balance is {balance:,} credits "
        f"({billing.format_usd_for_people(balance)}), below the {threshold:,} credits you asked "
        f"to be told about.\n\nAdd credits here:\n{billing_page}\n\n"
        f"Change or turn off this alert here:\n{alerts_page}\n",
    )
    return True


def send_key_budget_alert(window: str, percent: int) -> bool:
    """Tell the key's account (its owners) it has spent ``percent`` of its cap in this window,
    once."""
    claimed = billing_alerts.claim_key_budget_alert(window, percent)
    if claimed is None:
        return False
    api_key = ApiKey.objects.select_related("account").filter(pk=key_id_of_window(window)).first()
    if api_key is None:
        return False
    page = f"{settings.SITE_URL}{reverse('dashboard:key-spend', args=[api_key.pk])}"
    spent, cap = claimed.spent_credits, claimed.cap_credits
    reached = "has reached its spend cap" if percent >= 100 else f"has spent {percent}% of its cap"
    _email(
        api_key.account.contact_emails(),
        f"API key {api_key.name} {reached}",
        f"Your API key {api_key.name} ({api_key.prefix}…) {reached}: {spent:,} of "
        f"{cap:,} credits in this window (held credits of requests still running count until "
        f"they finish). Requests that would pass the cap are refused with "
        f"key_budget_exceeded.\n\nChange the cap here:\n{page}\n",
    )
    return True


def _email(to: list[str], subject: str, body: str) -> None:
    try:
        send_mail(
            subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}",
            message=body,
            from_email=None,
            recipient_list=to,
        )
    except Exception:
        logger.exception("could not email an alert (%s)", subject)
