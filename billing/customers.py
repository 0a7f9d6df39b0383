"""An account's billing details (who its invoices are made out to) and its Customer at Stripe.

The details are ours: the billing page's form writes them here, bounded and checked. Stripe's
Customer of the account gets a copy, so that the invoice Stripe makes for each Checkout payment
shows the company name, address and tax id. The Customer is created lazily: when the account
first pays by card, or first saves details (so that Stripe checks the tax id while the form is
still in front of the customer). ``BillingProfile.stripe_details`` is what the Customer was last
sent; a payment refreshes the Customer first whenever the details (or the account's email
address) have changed since.

No database transaction is held across a call to Stripe: what Stripe answered is saved after.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Account

from . import stripe_client
from .countries import NAMES as COUNTRY_NAMES
from .models import BillingProfile, CreditAccount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaxIdType:
    label: str
    example: str
    # What the value must look like once normalised (upper case, spaces taken out except for
    # Swiss numbers, which keep Stripe's "CHE-123.456.789 MWST" form).
    pattern: str


# The tax ids the form offers, by Stripe's type names (a subset of Stripe's list: the kinds our
# customers' invoices need most). Formats as Stripe documents them for each type.
TAX_ID_TYPES: dict[str, TaxIdType] = {
    "eu_vat": TaxIdType(
        "EU VAT number",
        "DE123456789",
        r"(AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)"
        r"[0-9A-Z+*]{2,12}",
    ),
    "gb_vat": TaxIdType("UK VAT number", "GB123456789", r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})"),
    "ch_vat": TaxIdType(
        "Swiss VAT number", "CHE-123.456.789 MWST", r"CHE-?\d{3}\.?\d{3}\.?\d{3}( ?(MWST|TVA|IVA))?"
    ),
    "no_vat": TaxIdType("Norwegian VAT number", "123456789MVA", r"\d{9}MVA"),
    "us_ein": TaxIdType("US Employer Identification Number", "12-3456789", r"\d{2}-?\d{7}"),
    "ca_bn": TaxIdType("Canadian Business Number", "123456789", r"\d{9}"),
    "au_abn": TaxIdType("Australian Business Number", "12345678912", r"\d{11}"),
    "nz_gst": TaxIdType("New Zealand GST number", "123456789", r"\d{8,9}"),
    "in_gst": TaxIdType(
        "Indian GST number", "12ABCDE3456FGZH", r"\d{2}[A-Z]{5}\d{4}[A-Z][0-9A-Z]Z[0-9A-Z]"
    ),
}


def normalise_tax_id(tax_type: str, value: str) -> str:
    value = " ".join(value.upper().split())
    return value if tax_type == "ch_vat" else value.replace(" ", "")


def tax_id_problem(tax_type: str, value: str) -> str:
    """Why ``value`` (normalised) is not a ``tax_type`` number, for the form; "" when it is."""
    kind = TAX_ID_TYPES.get(tax_type)
    if kind is None:
        return "Choose one of the tax id types listed."
    if not re.fullmatch(kind.pattern, value):
        return f"This does not look like a {kind.label}: it should look like {kind.example}."
    return ""


@dataclass(frozen=True)
class Details:
    """What the billing details form takes, cleaned (billing.forms.BillingDetailsForm)."""

    company_name: str
    address_line1: str
    address_line2: str
    city: str
    postal_code: str
    state: str
    country: str
    tax_id_type: str
    tax_id_value: str


class DetailsRefused(Exception):
    """Stripe refused a detail: ``field`` is the form's field, ``message`` what to tell them.
    Nothing was saved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def profile_of(owner: Account) -> BillingProfile | None:
    return BillingProfile.objects.filter(account__owner=owner).first()


def _profile(owner: Account) -> BillingProfile:
    """The account's profile, made (with the account) if it has none yet."""
    account = CreditAccount.objects.of(owner.pk)
    try:
        with transaction.atomic():
            profile, _ = BillingProfile.objects.get_or_create(account=account)
    except IntegrityError:  # made by a concurrent request
        profile = BillingProfile.objects.get(account=account)
    return profile


def details_of(profile: BillingProfile) -> Details:
    return Details(**{name: getattr(profile, name) for name in Details.__dataclass_fields__})


def _customer_view(profile: BillingProfile, owner: Account) -> dict[str, Any]:
    """What the account's Customer at Stripe should show (JSON, compared with what it was last
    sent)."""
    address = None
    if profile.country:
        address = {
            "line1": profile.address_line1,
            "line2": profile.address_line2,
            "city": profile.city,
            "postal_code": profile.postal_code,
            "state": profile.state,
            "country": profile.country,
        }
    tax_id = [profile.tax_id_type, profile.tax_id_value] if profile.tax_id_type else None
    # A person's own address and name; an organisation's first owner's address, and its name.
    person = owner.personal_owner
    email = person.email if person is not None else next(iter(owner.contact_emails()), "")
    name = person.name if person is not None else owner.name
    return {
        "email": email,
        "name": profile.company_name or name,
        "address": address,
        "tax_id": tax_id,
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _push(profile: BillingProfile, owner: Account) -> bool:
    """Bring the Customer at Stripe up to the profile (creating it if there is none). Sets the
    profile's Stripe fields in memory; the caller saves them. True when Stripe was called.

    Raises stripe_client.InvalidRequest when Stripe refuses a detail (then nothing of the
    change is on the Customer), StripeUnavailable when it could not be reached."""
    want = _customer_view(profile, owner)
    tax = (want["tax_id"][0], want["tax_id"][1]) if want["tax_id"] else None
    if not profile.stripe_customer_id:
        # The key follows the details: two first payments at once make one Customer, and a
        # retry after changed details is a new request, not a replay Stripe would refuse.
        customer = stripe_client.create_customer(
            email=want["email"],
            name=want["name"],
            address=want["address"],
            tax_id=tax,
            metadata={"account_id": str(owner.pk), "credit_account_id": str(profile.account_id)},
            idempotency_key=f"customer-{profile.account_id}-{_digest(want)}",
        )
        profile.stripe_customer_id = customer.id
        profile.stripe_tax_id = customer.tax_id
        profile.stripe_details = want
        return True
    have = profile.stripe_details or {}
    if have == want:
        return False
    customer_id = profile.stripe_customer_id
    new_tax_id = profile.stripe_tax_id
    tax_changed = have.get("tax_id") != want["tax_id"] or bool(tax) != bool(new_tax_id)
    if tax_changed:
        # Added before anything else changes: a value Stripe refuses leaves the Customer as it was.
        new_tax_id = ""
        if tax:
            new_tax_id = stripe_client.add_tax_id(
                customer_id,
                tax[0],
                tax[1],
                idempotency_key=f"tax-id-{customer_id}-{_digest(want['tax_id'])}",
            )
    if {k: have.get(k) for k in ("email", "name", "address")} != {
        k: want[k] for k in ("email", "name", "address")
    }:
        stripe_client.update_customer(
            customer_id, email=want["email"], name=want["name"], address=want["address"]
        )
    if profile.stripe_tax_id and profile.stripe_tax_id != new_tax_id:
        # The Customer has one tax id: the one replaced (or removed) goes.
        stripe_client.delete_tax_id(customer_id, profile.stripe_tax_id)
    profile.stripe_tax_id = new_tax_id
    profile.stripe_details = want
    return True


def _save_stripe_fields(profile: BillingProfile) -> None:
    """Save what Stripe answered. The Customer id only where the profile has none yet: of two
    first payments at once that made two Customers (different details), the first one saved is
    the account's, and the next payment brings it up to date."""
    fields = {"stripe_tax_id": profile.stripe_tax_id, "stripe_details": profile.stripe_details}
    rows = BillingProfile.objects.filter(
        pk=profile.pk, stripe_customer_id__in=["", profile.stripe_customer_id]
    ).update(stripe_customer_id=profile.stripe_customer_id, **fields)
    if not rows:
        profile.refresh_from_db()


def _refusal(exc: stripe_client.InvalidRequest) -> DetailsRefused:
    if exc.code.startswith("tax_id") or exc.param.startswith(("tax_id", "value", "type")):
        return DetailsRefused(
            "tax_id_value",
            "Stripe did not accept this tax id for the type chosen: check the number, and "
            "that it is of that type.",
        )
    if "postal_code" in exc.param:
        return DetailsRefused(
            "postal_code", "Stripe did not accept this postal code for the country."
        )
    return DetailsRefused("__all__", "Stripe did not accept these details: check each field.")


def save_details(owner: Account, details: Details) -> bool:
    """Store the account's billing details and, when card payments are set up, give them to its
    Customer at Stripe (creating the Customer if need be). True when Stripe has them now, False
    when they are stored only (Stripe unreachable or not set up: the next payment sends them).

    Raises DetailsRefused, storing nothing, when Stripe refuses a detail (a tax id it does not
    take for its type)."""
    profile = _profile(owner)
    for name, value in asdict(details).items():
        setattr(profile, name, value)
    synced = False
    if stripe_client.is_configured():
        try:
            _push(profile, owner)
            synced = True
        except stripe_client.InvalidRequest as exc:
            logger.info("billing details of account %s refused: %s", profile.account_id, exc)
            raise _refusal(exc) from exc
        except stripe_client.StripeUnavailable as exc:
            logger.warning(
                "billing details of account %s saved; Stripe gets them later: %s",
                profile.account_id,
                exc,
            )
    with transaction.atomic():
        profile.save(update_fields=[*asdict(details), "updated_at"])
        _save_stripe_fields(profile)
    return synced


def ensure_customer(owner: Account) -> str:
    """The id of the account's Customer at Stripe, with its details up to date: created, or
    refreshed, first if need be. Raises stripe_client.StripeUnavailable (InvalidRequest when
    Stripe refused the stored details)."""
    profile = _profile(owner)
    if _push(profile, owner):
        _save_stripe_fields(profile)
    return profile.stripe_customer_id


def country_name(code: str) -> str:
    return COUNTRY_NAMES.get(code, code)
