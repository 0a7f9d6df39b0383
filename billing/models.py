"""Money. Credits are integers; the ledger is append-only; invariants live in the database.

``billing`` knows nothing about images: the ledger records references such as ``gen:<id>``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from .money import format_money

# The constraint whose violation is a spend cap refusing a hold (billing.limits reads it).
SPEND_CAP_CONSTRAINT = "billing_spend_within_cap"


class AppendOnly(models.Model):
    """A money trail: rows are inserted, never changed or removed."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Always an INSERT: an instance carrying an existing row's id must fail, not overwrite.
        if not self._state.adding:
            raise ValueError(f"{type(self).__name__} rows are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError(f"{type(self).__name__} rows are append-only")


def default_alert_percents() -> list[int]:
    return [50, 80, 100]


class CreditAccountManager(models.Manager["CreditAccount"]):
    def of(self, owner_id: int) -> CreditAccount:
        """The credit account of the account ``owner_id`` (accounts.Account), made (empty) if it
        has none yet: one is made lazily, the first time an account's money is touched, and two
        requests may race to make it."""
        account = self.filter(owner_id=owner_id).first()
        if account is not None:
            return account
        try:
            with transaction.atomic():
                return self.create(owner_id=owner_id)
        except IntegrityError:  # made by a concurrent transaction
            return self.get(owner_id=owner_id)


class CreditAccount(models.Model):
    # Whose money this is: a person's personal account or an organisation (accounts.Account).
    owner = models.OneToOneField(
        "accounts.Account", on_delete=models.PROTECT, related_name="credit_account"
    )
    # A cache of the sum of this account's ledger, changed only in the transaction that appends
    # the ledger row, with this row locked.
    balance_credits = models.BigIntegerField(default=0)
    # Credits a refund or dispute should have taken back but the balance could not cover: a cache
    # of the sum of this account's DebtEntry rows. While above zero the API refuses new work, and
    # credits that arrive pay it first.
    owed_credits = models.BigIntegerField(default=0)
    # Credits ever added by top-ups, grants and promotion codes, less what refunds and disputes
    # took back: what the account's rate-limit tier follows (generation/ratelimits.py). Changed in
    # the same transactions as the ledger lines that move it.
    lifetime_credits = models.BigIntegerField(default=0)
    # The customer's low-balance alert (billing/alerts.py): an email and a ``credits.low``
    # webhook event when a spend takes the balance below this many credits. Empty: no alert.
    low_balance_alert_credits = models.PositiveBigIntegerField(null=True, blank=True)
    # When the alert last fired; it fires again only after credits coming in lift the balance
    # back to the threshold (a settlement's released hold does not re-arm it), so it fires once
    # per crossing, not on every request near the line.
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    # The shares of a key's spend cap (per cent) at which the account is told, once per window.
    key_budget_alert_percents = models.JSONField(default=default_alert_percents, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Automatic top-up (billing.auto_top_up): when a spend takes the balance below the threshold,
    # the saved card is charged the amount, off-session. ``enabled`` means armed: the customer
    # turned it on and a card, a threshold and an amount are all set (the constraint below).
    auto_top_up_enabled = models.BooleanField(default=False)
    auto_top_up_threshold_credits = models.PositiveBigIntegerField(null=True, blank=True)
    auto_top_up_amount_cents = models.PositiveIntegerField(null=True, blank=True)
    # The card the customer saved for it in a Checkout payment (Stripe's PaymentMethod id), and
    # how to name it to them ("Visa ending 4242"). A declined card is forgotten here for good.
    auto_top_up_payment_method_id = models.CharField(max_length=255, blank=True)
    auto_top_up_card = models.CharField(max_length=64, blank=True)
    # The member whose payment saved it: when they leave the account, their card goes with them.
    auto_top_up_card_saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A card saved by a payment started before this moment is not taken: set when a card is
    # taken (to its payment's start), forgotten or turned off, so a late or repeated event of an
    # older payment never brings back a card that was declined, removed or replaced.
    auto_top_up_card_since = models.DateTimeField(null=True, blank=True)
    # When a charge was declined and automatic top-up stopped, and why (for the billing page);
    # only the customer's own action turns it on again.
    auto_top_up_stopped_at = models.DateTimeField(null=True, blank=True)
    auto_top_up_stop_reason = models.CharField(max_length=255, blank=True)

    objects = CreditAccountManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance_credits__gte=0), name="billing_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(owed_credits__gte=0), name="billing_owed_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(lifetime_credits__gte=0), name="billing_lifetime_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(auto_top_up_enabled=False)
                | (
                    models.Q(
                        auto_top_up_threshold_credits__gt=0,
                        auto_top_up_amount_cents__gt=0,
                    )
                    & ~models.Q(auto_top_up_payment_method_id="")
                ),
                name="billing_auto_top_up_armed_fully",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner} ({self.balance_credits} credits)"


class LedgerKind(models.TextChoices):
    GRANT = "grant", "Grant"
    TOP_UP = "top_up", "Top-up"
    RESERVE = "reserve", "Reserve"
    RELEASE = "release", "Release"
    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"
    PROMO = "promo", "Promotion code"
    # A card payment refunded or disputed: its credits taken back (as far as the balance goes).
    REVERSAL = "reversal", "Payment reversed"
    # Credits that arrived while the account owed some, paying what was owed.
    DEBT_PAYMENT = "debt_payment", "Debt paid"
    # A reversal undone: the refund failed or the dispute was won, so its credits come back.
    REINSTATED = "reinstated", "Payment reinstated"

    @classmethod
    def sign_of(cls, kind: str) -> int:
        """+1 for a kind that adds credits, -1 for one that takes them (a reversal may take
        nothing), 0 for one that goes either way. KeyError for an unknown kind."""
        return LEDGER_KIND_SIGNS[kind]


LEDGER_KIND_SIGNS: dict[str, int] = {
    LedgerKind.GRANT: 1,
    LedgerKind.TOP_UP: 1,
    LedgerKind.RELEASE: 1,
    LedgerKind.REFUND: 1,
    LedgerKind.PROMO: 1,
    LedgerKind.REINSTATED: 1,
    LedgerKind.RESERVE: -1,
    LedgerKind.CHARGE: -1,
    LedgerKind.REVERSAL: -1,
    LedgerKind.DEBT_PAYMENT: -1,
    LedgerKind.ADJUSTMENT: 0,
}


def _kinds_signed(sign: int) -> list[str]:
    return sorted(str(kind) for kind, s in LEDGER_KIND_SIGNS.items() if s == sign)


class LedgerEntry(models.Model):
    Kind = LedgerKind

    # Found by account through the (account, -created_at) index. Every request writes two or
    # three lines, so the table keeps no redundant index (no account_id or LIKE-pattern ones).
    account = models.ForeignKey(
        CreditAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed: positive adds to the balance, negative takes from it.
    amount_credits = models.BigIntegerField()
    balance_after_credits = models.BigIntegerField()
    reference = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=255, blank=True)
    # Every entry has one; writing the same one twice fails in the database (the unique
    # constraint below), which is what makes settlement, webhooks and replays happen once.
    idempotency_key = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="billing_ledger_idempotency_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(balance_after_credits__gte=0),
                name="billing_ledger_balance_after_not_negative",
            ),
            # Each kind's sign (LEDGER_KIND_SIGNS), kept by the database whoever writes the line.
            models.CheckConstraint(
                condition=models.Q(kind__in=_kinds_signed(1), amount_credits__gte=0)
                | models.Q(kind__in=_kinds_signed(-1), amount_credits__lte=0)
                | models.Q(kind__in=_kinds_signed(0)),
                name="billing_ledger_kind_sign",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["reference"], name="billing_ledger_reference_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_credits:+d} ({self.reference})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Always an INSERT: an instance carrying an existing row's id must fail, not overwrite.
        if not self._state.adding:
            raise ValueError("Ledger entries are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Ledger entries are append-only")


class PriceRule(models.Model):
    """How one model's work is priced (billing.pricing reads it; the admin edits it).

    Each delivered image costs the credits of the first of the rule's tiers (``PriceTier``,
    by rising upper bound) that its pixel count (width x height, as delivered) falls in; layers
    are output images like any other. Each upstream call that delivers also pays
    ``reference_credits`` for every reference image it was sent beyond ``free_references``.

    A change applies to requests accepted after it: each request keeps the rule it was quoted
    with (``Quote.record``), and is settled by that copy, never by a price read later.
    """

    model = models.CharField(
        max_length=64, unique=True, help_text="The public model id (generation/catalog.toml)."
    )
    reference_credits = models.PositiveIntegerField(
        default=0, help_text="Credits per reference image sent, per upstream call."
    )
    free_references = models.PositiveSmallIntegerField(
        default=0, help_text="Reference images per call that cost nothing."
    )
    note = models.CharField(
        max_length=255, blank=True, help_text="Where the figures come from, for the next operator."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "price rule"

    def __str__(self) -> str:
        return self.model


class PriceTier(models.Model):
    """Credits per delivered image up to ``max_pixels`` (inclusive) of a rule; the rule's last
    tier has no bound (every larger image)."""

    rule = models.ForeignKey(PriceRule, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(
        max_length=16, help_text="What the customer sees, e.g. 'up to 2K' or '4K'."
    )
    max_pixels = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="The largest width x height this tier prices; empty for the last tier.",
    )
    credits_per_image = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["rule", models.F("max_pixels").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "max_pixels"], name="billing_pricetier_bound_unique"
            ),
            models.UniqueConstraint(
                fields=["rule"],
                condition=models.Q(max_pixels__isnull=True),
                name="billing_pricetier_one_unbounded",
            ),
            models.CheckConstraint(
                condition=models.Q(credits_per_image__gt=0), name="billing_pricetier_positive"
            ),
        ]

    def __str__(self) -> str:
        bound = f"up to {self.max_pixels:,} px" if self.max_pixels else "any larger"
        return f"{self.name} ({bound}): {self.credits_per_image} credits"


class DebtEntry(AppendOnly):
    """What an account owes, and why: + when a reversal exceeded the balance, - when paid."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="debts")
    amount_credits = models.BigIntegerField()
    owed_after_credits = models.BigIntegerField()
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    description = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=150, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "debt entries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(owed_after_credits__gte=0),
                name="billing_debt_owed_after_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"debt {self.amount_credits:+d} ({self.reference})"


class PurchaseKind(models.TextChoices):
    # The customer paid on Stripe's hosted Checkout page.
    CHECKOUT = "checkout", "Card payment"
    # An automatic top-up: a PaymentIntent charged off-session to the saved card.
    AUTO = "auto", "Automatic top-up"


class Purchase(models.Model):
    """Credits bought with a card: one row per Checkout Session, or per automatic top-up (a
    PaymentIntent charged to the saved card, ``kind`` auto, with no session)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        REFUNDED = "refunded", "Refunded"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        DISPUTED = "disputed", "Disputed"

    # In URLs, Stripe metadata and idempotency keys: unguessable, and unique across installs that
    # share one Stripe account.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The account the credits go to, and the member who started the payment (None for an
    # automatic top-up, which the account's settings start).
    owner = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="purchases"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="purchases",
    )
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    # Fixed when the purchase starts (amount_cents * CREDITS_PER_USD // 100), so a later change
    # of the rate never changes what a customer was shown.
    credits = models.BigIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    receipt_url = models.URLField(max_length=2000, blank=True)
    # What has gone back to the customer, as far as Stripe has told us (webhooks.refunded_cents),
    # and what a dispute holds; the credits taken back for both.
    refunded_cents = models.PositiveIntegerField(default=0)
    disputed_cents = models.PositiveIntegerField(default=0)
    reversed_credits = models.BigIntegerField(default=0)
    # The most charge.refunded has reported (the charge's amount_refunded, a running total).
    charge_refunded_cents = models.PositiveIntegerField(default=0)
    # The dispute this purchase's credits were taken back for (Stripe allows one per charge),
    # from its first event; it stays when the dispute is won (disputed_cents goes back to 0).
    dispute_id = models.CharField(max_length=255, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(
        max_length=16, choices=PurchaseKind.choices, default=PurchaseKind.CHECKOUT
    )
    # The customer ticked "save this card for automatic top-ups" (a Checkout payment made with
    # payment_intent_data.setup_future_usage=off_session).
    save_card = models.BooleanField(default=False)
    # The invoice Stripe made for a Checkout payment (invoice_creation), made out to the account's
    # billing details: its id (the session's ``invoice``), number and links, once finalized.
    invoice_id = models.CharField(max_length=255, blank=True, db_index=True)
    invoice_number = models.CharField(max_length=64, blank=True)
    invoice_pdf_url = models.URLField(max_length=2000, blank=True)
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_cents__gt=0, credits__gt=0),
                name="billing_purchase_positive",
            ),
            # One automatic top-up in flight per account, whatever runs at the same moment.
            models.UniqueConstraint(
                fields=["owner"],
                condition=models.Q(kind="auto", status="pending"),
                name="billing_one_pending_auto_top_up",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    reversed_credits__gte=0, reversed_credits__lte=models.F("credits")
                ),
                name="billing_purchase_reversed_within_credits",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    refunded_cents__lte=models.F("amount_cents"),
                    disputed_cents__lte=models.F("amount_cents"),
                    charge_refunded_cents__lte=models.F("amount_cents"),
                ),
                name="billing_purchase_refunds_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount_cents} {self.currency} for {self.credits} credits ({self.status})"

    @property
    def price(self) -> str:
        return format_money(self.amount_cents, self.currency)

    @property
    def invoice_to_download(self) -> bool:
        """Whether the customer is offered this purchase's invoice: it has one, and was not a
        failed payment (a declined automatic top-up's invoice is voided, owed by nobody)."""
        return bool(self.invoice_id) and self.status != self.Status.FAILED

    @property
    def badge(self) -> str:
        """The badge class (static/css/app.css) that colours this purchase's status."""
        return {
            self.Status.PAID: "success",
            self.Status.PENDING: "info",
            self.Status.EXPIRED: "warning",
            self.Status.PARTIALLY_REFUNDED: "warning",
            self.Status.REFUNDED: "warning",
        }.get(self.Status(self.status), "danger")


class StripeRefund(models.Model):
    """A refund of one of our charges, by Stripe's id, as its latest event showed it.

    What makes a failed refund give its credits back exactly once, and keeps a later refund's
    accounting right: a refund counts while it is pending, needs action or has succeeded, and
    never again once it has failed or was canceled (both final at Stripe).
    """

    # Stripe's statuses in which the money did not (or will not) reach the customer.
    GONE = ("failed", "canceled")

    id = models.CharField(max_length=255, primary_key=True)
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.PositiveIntegerField()
    # Stripe's word for it: pending, requires_action, succeeded, failed or canceled.
    status = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"refund {self.id} of {self.amount_cents} ({self.status})"

    @property
    def gone(self) -> bool:
        return self.status in self.GONE


class StripeEvent(models.Model):
    """Every verified webhook event, by Stripe's id: a replay finds its row and does nothing."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"


class PromoCode(models.Model):
    code = models.CharField(
        max_length=40, help_text="What customers type, in any case (stored in capitals)."
    )
    credits = models.PositiveIntegerField(help_text="Credits each redemption adds.")
    max_redemptions = models.PositiveIntegerField(
        default=1, help_text="How many accounts may redeem it (each account once)."
    )
    times_redeemed = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the code does not expire."
    )
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="For operators only.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                Upper("code"),
                name="billing_promocode_code_unique",
                violation_error_message="A promotion code with these letters exists already "
                "(codes ignore case).",
            ),
            models.CheckConstraint(
                condition=models.Q(credits__gt=0, max_redemptions__gt=0),
                name="billing_promocode_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(times_redeemed__lte=models.F("max_redemptions")),
                name="billing_promocode_within_max",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.code = normalise_code(self.code)
        super().save(*args, **kwargs)


def normalise_code(code: str) -> str:
    return "".join(code.split()).upper()


class PromoRedemption(models.Model):
    promo_code = models.ForeignKey(PromoCode, on_delete=models.PROTECT, related_name="redemptions")
    account = models.ForeignKey(
        CreditAccount, on_delete=models.PROTECT, related_name="promo_redemptions"
    )
    # The person who redeemed it: a code counts once per account and once per person, so no one
    # redeems it again through each organisation they make.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    credits = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["promo_code", "account"], name="billing_promo_once_per_account"
            ),
            models.UniqueConstraint(
                fields=["promo_code", "user"], name="billing_promo_once_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.promo_code} by {self.account}"


class SpendWindow(models.Model):
    """What one spender (an API key) has spent in one window of its cap, held credits included.

    billing knows nothing about keys: ``name`` names the spender and the window
    (billing.limits.window_name, e.g. ``key:42:day:2026-12-06``). A hold adds its credits here
    in the same transaction (or statement) as the hold itself, and the database refuses it when
    the sum would pass ``cap_credits`` (the check constraint below): so parallel requests can
    never spend past a cap, on any number of processes. A settlement gives back what it held
    but did not charge. ``cap_credits`` is the cap as the latest hold saw it (a lowered cap
    applies from the next hold).
    """

    name = models.CharField(max_length=100, unique=True)
    cap_credits = models.BigIntegerField()
    spent_credits = models.BigIntegerField(default=0)
    # The highest alert threshold (per cent of the cap) already told, so each fires once.
    alerted_percent = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(spent_credits__gte=0), name="billing_spend_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(spent_credits__lte=models.F("cap_credits")),
                name=SPEND_CAP_CONSTRAINT,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.spent_credits} of {self.cap_credits}"


class BillingProfile(models.Model):
    """Who an account's invoices are made out to, and its Customer at Stripe.

    Created with the Customer (lazily, at the first card payment) or when the customer saves
    billing details. The details are ours (the billing page's form); Stripe's Customer gets a copy
    (``stripe_details``: what it was last sent), refreshed before a payment whenever they differ.
    """

    account = models.OneToOneField(
        CreditAccount, on_delete=models.PROTECT, related_name="billing_profile"
    )
    company_name = models.CharField(max_length=150, blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=100, blank=True)
    # ISO 3166-1 alpha-2 (billing.countries), as Stripe's addresses take it.
    country = models.CharField(max_length=2, blank=True)
    # Stripe's names for tax ids (eu_vat, gb_vat, us_ein, ...; billing.customers.TAX_ID_TYPES).
    tax_id_type = models.CharField(max_length=16, blank=True)
    tax_id_value = models.CharField(max_length=64, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # The customer's tax id object at Stripe (txi_...), replaced when the tax id changes.
    stripe_tax_id = models.CharField(max_length=255, blank=True)
    stripe_details = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="billing_profile_one_account_per_customer",
            ),
            models.CheckConstraint(
                condition=models.Q(tax_id_type="", tax_id_value="")
                | (~models.Q(tax_id_type="") & ~models.Q(tax_id_value="")),
                name="billing_profile_tax_id_whole",
            ),
        ]

    def __str__(self) -> str:
        return self.company_name or f"billing profile of account {self.account_id}"

    @property
    def has_details(self) -> bool:
        return bool(self.company_name)
