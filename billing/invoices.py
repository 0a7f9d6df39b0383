"""The invoices Stripe makes for Checkout payments (``invoice_creation``), kept on the purchase.

Checkout makes each payment's invoice itself, made out to the account's Customer (its billing
details: billing.customers). Its id comes with ``checkout.session.completed`` (the session's
``invoice``); its number and links once it is finalized, from ``invoice.finalized`` and
``invoice.paid``, or from asking Stripe right after the payment is credited. Any of these may
come first, any may come twice: each only fills in what the purchase does not show yet.

The billing page links to our own address for the PDF (``pdf_url``), which asks Stripe for the
invoice's current link at the moment of the download, so a link Stripe has since replaced is
never handed out, and only the purchase's owner ever gets it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from . import payments, stripe_client
from .models import Purchase

logger = logging.getLogger(__name__)

# Invoices whose links could not be fetched when their purchases were credited are looked up
# again for this long (with the missing receipts: billing.tasks), at most INVOICES_PER_RUN a run.
INVOICE_LOOKUP_DAYS = 7
INVOICES_PER_RUN = 50


def record(purchase: Purchase, invoice: stripe_client.Invoice) -> bool:
    """Keep the invoice's id, and its number and links once it has them. True when anything
    changed. The caller holds the purchase (locked, or fresh)."""
    fields = {"invoice_id": invoice.id}
    # A draft has no number and no links yet: a later event or lookup brings them.
    if invoice.invoice_pdf:
        fields |= {
            "invoice_number": invoice.number[:64],
            "invoice_pdf_url": invoice.invoice_pdf,
            "hosted_invoice_url": invoice.hosted_invoice_url,
        }
    changed = {k: v for k, v in fields.items() if getattr(purchase, k) != v}
    if not changed:
        return False
    for name, value in changed.items():
        setattr(purchase, name, value)
    Purchase.objects.filter(pk=purchase.pk).update(**changed, updated_at=timezone.now())
    return True


def fill_invoice(purchase: Purchase) -> bool:
    """Ask Stripe for the links of a purchase's invoice, if it has one without them yet. True
    when they were filled. Raises stripe_client.StripeUnavailable."""
    if not purchase.invoice_id or purchase.invoice_pdf_url:
        return False
    invoice = stripe_client.retrieve_invoice(purchase.invoice_id)
    return record(purchase, invoice) and bool(invoice.invoice_pdf)


def fill_missing_invoices(*, limit: int = INVOICES_PER_RUN) -> int:
    """Fetch the invoice links that could not be fetched when their purchases were credited,
    oldest first; stops at the first failure (Stripe is still unreachable). Returns how many
    were filled."""
    if not stripe_client.is_configured():
        return 0
    since = timezone.now() - timedelta(days=INVOICE_LOOKUP_DAYS)
    waiting = Purchase.objects.filter(credited_at__gte=since, invoice_pdf_url="").exclude(
        invoice_id=""
    )
    return payments.fill_oldest_first(waiting, fill_invoice, what="invoices", limit=limit)


def is_stripes(url: str) -> bool:
    """Whether ``url`` is one of Stripe's pages (``https://…stripe.com``), or on the host the
    Stripe client is pointed at (STRIPE_API_BASE: stripe-mock, the tests' fake). The download
    redirects only there: a stored link is never an open redirect, whoever wrote it."""
    parts = urlsplit(url)
    if parts.scheme == "https" and (
        parts.hostname == "stripe.com" or (parts.hostname or "").endswith(".stripe.com")
    ):
        return True
    base = urlsplit(settings.STRIPE_API_BASE)
    return (parts.scheme, parts.netloc) == (base.scheme, base.netloc) and bool(parts.netloc)


def pdf_url(purchase: Purchase) -> str:
    """Where the purchase's invoice PDF can be downloaded now: Stripe's current link (kept on
    the purchase), or the one kept before when Stripe cannot be asked. "" when there is none
    (no invoice, or not finalized yet)."""
    if not purchase.invoice_id:
        return ""
    if stripe_client.is_configured():
        try:
            record(purchase, stripe_client.retrieve_invoice(purchase.invoice_id))
        except stripe_client.StripeUnavailable as exc:
            logger.warning("invoice of purchase %s: %s", purchase.public_id, exc)
    return purchase.invoice_pdf_url if is_stripes(purchase.invoice_pdf_url) else ""
