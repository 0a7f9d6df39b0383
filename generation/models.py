"""The generation domain: one Generation row per image request, one Image row per image."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# A generation's money is recorded in the ledger under "gen:<id>" (billing knows no images).
LEDGER_REFERENCE_PREFIX = "gen:"


def new_public_id() -> str:
    return f"gen_{secrets.token_hex(12)}"


def new_image_token() -> str:
    # 128 random bits: image URLs are public but cannot be guessed.
    return secrets.token_urlsafe(16)


class JobStatus:
    """A generation's status as a job, in the API's and the webhooks' words
    (``Generation.job_status``)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALL = (QUEUED, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)


class Generation(models.Model):
    """The truth about a request, whatever happened to the process that served it.

    Its reservation is settled exactly once: by the request that ran it, or, past
    ``deadline_at``, by the reconciler. Both claim the row with a conditional UPDATE.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        API = "api", "API"
        PLAYGROUND = "playground", "Playground"

    # Not settled yet: its credits are still held, and exactly one settlement may claim it.
    UNSETTLED = (Status.QUEUED, Status.RUNNING)

    # Unique by a constraint rather than unique=True, and an account's rows found by the
    # (account, -created_at) index: PostgreSQL then keeps no extra LIKE-pattern and FK indexes,
    # which every request would write into (bench/api_bench.py).
    public_id = models.CharField(max_length=40, default=new_public_id)
    # Whose request it is (whose credits and limits it uses, who sees it); and the member who
    # made it: in the playground, that member; through the API, the key's maker.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="generations", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="generations",
        db_index=False,
    )
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)

    model = models.CharField(max_length=64)
    upstream_model = models.CharField(max_length=128)
    prompt = models.TextField()
    size = models.CharField(max_length=16)
    # The name of the price tier each image was held at.
    size_tier = models.CharField(max_length=16, blank=True)
    # The most images asked for: n, or a set's max_images (made in one call: ``calls``).
    n = models.PositiveSmallIntegerField()
    response_format = models.CharField(max_length=16, default="url")
    # Seedream extras (seed, guidance_scale, watermark) and the client's `user` field.
    params = models.JSONField(default=dict, blank=True)

    # What each image was held at (the highest tier its size can reach), and the whole quote
    # with the price rule it used (billing.Quote.record): settled by that, never a later price.
    price_per_image_credits = models.PositiveIntegerField(default=0)
    price_quote = models.JSONField(default=dict, blank=True)
    reserved_credits = models.PositiveIntegerField(default=0)
    charged_credits = models.PositiveIntegerField(default=0)
    # The window of its key's spend cap its hold was counted in (billing.limits.Limit.window),
    # which its settlement gives back what it did not charge to; empty for an uncapped key.
    spend_window = models.CharField(max_length=100, blank=True)
    images_delivered = models.PositiveSmallIntegerField(default=0)

    # The response the client got, so an Idempotency-Key replay answers the same.
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_param = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    idempotency_key = models.CharField(max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)

    # Playground runs: how many times a worker has claimed the row, and when its task was last
    # sent, so the reconciler can tell a lost message or a dead worker from slow work.
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()
    # When its owner asked to cancel it (POST /v1/images/generations/{id}/cancel). A queued
    # generation is settled at once, uncharged; a running one settles when the upstream answers,
    # charged for what was delivered. Either way its job reads "cancelled" from then on.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        # The table keeps the name it had when these models lived in the api app.
        db_table = "api_generation"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="api_generation_public_id_uniq"),
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="api_generation_idempotency_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(charged_credits__lte=models.F("reserved_credits")),
                name="api_generation_charge_within_reservation",
            ),
            models.CheckConstraint(
                condition=models.Q(images_delivered__lte=models.F("n")),
                name="api_generation_delivered_within_n",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="generation_account_idx"),
            # The reconciler's look for rows past their deadline. Partial, so a settled row
            # leaves it and a request's final UPDATE writes no entry into it.
            models.Index(
                fields=["deadline_at"],
                condition=models.Q(status__in=["queued", "running"]),
                name="api_gen_unsettled_deadline_idx",
            ),
            # The reconciler's look for lost or abandoned playground runs.
            models.Index(
                fields=["status", "dispatched_at"],
                condition=models.Q(status__in=["queued", "running"]),
                name="api_gen_unfinished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.model} x{self.n} ({self.status})"

    @property
    def calls(self) -> int:
        """How many upstream calls make its images: one per image, or one for a set or a
        layer split."""
        sets_or_layers = self.params.get("max_images") or self.params.get("layers")
        return 1 if sets_or_layers else self.n

    @property
    def ledger_reference(self) -> str:
        return f"{LEDGER_REFERENCE_PREFIX}{self.pk}"

    @property
    def credits_not_charged(self) -> int:
        """What was held for this request and given back (images not delivered)."""
        return self.reserved_credits - self.charged_credits

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNSETTLED

    @property
    def job_status(self) -> str:
        """Its status as a job. One its owner cancelled reads "cancelled" once it is settled,
        whatever was delivered before the upstream answered (that much is charged)."""
        if self.status == self.Status.QUEUED:
            return JobStatus.QUEUED
        if self.status == self.Status.RUNNING:
            return JobStatus.IN_PROGRESS
        if self.cancel_requested_at is not None:
            return JobStatus.CANCELLED
        if self.status == self.Status.SUCCEEDED:
            return JobStatus.COMPLETED
        return JobStatus.FAILED


class Image(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    # Found by account through the gallery index; token unique by a constraint (see Generation).
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    token = models.CharField(max_length=32, default=new_image_token)
    index = models.PositiveSmallIntegerField()
    file = models.FileField(max_length=200)
    content_type = models.CharField(max_length=32, default="image/jpeg")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    # In a layer split: its z_index (0: the base) and a layer's name, description and
    # bounding_box (upstream.DeliveredImage.layer); None for any other image.
    layer = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Shown on the storefront's showcase, by its public /img/ URL. Only the operator sets it (in
    # the admin); a customer's gallery never does.
    showcase = models.BooleanField(
        default=False,
        help_text="Show this image on the home page. Only mark images you may publish.",
    )

    class Meta:
        # The table keeps the name it had when these models lived in the api app.
        db_table = "api_image"
        ordering = ["generation", "index"]
        constraints = [models.UniqueConstraint(fields=["token"], name="api_image_token_uniq")]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="image_gallery_idx"),
            # The retention job's oldest-first sweep.
            models.Index(fields=["created_at"], name="api_image_created_idx"),
            # The home page's few showcase images, without reading the whole table.
            models.Index(
                fields=["-created_at"],
                condition=models.Q(showcase=True),
                name="api_image_showcase_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token} ({self.width}x{self.height})"


class InputImage(models.Model):
    """A reference image the customer sent with a generation, kept with it (private: only its
    owner sees it, in the gallery; deleted with the account and by the images' retention)."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="inputs")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=32, unique=True, default=new_image_token)
    index = models.PositiveSmallIntegerField()  # its place in the request, from 0
    file = models.FileField(max_length=255)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["generation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="input_image_order")
        ]

    def __str__(self) -> str:
        return f"input {self.index} of {self.generation_id}"


class AccountRateLimit(models.Model):
    """An operator's custom limits for one account (the "custom limit" of the docs): each field
    set replaces the tier's; an empty one keeps it."""

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="rate_limit_override"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    images_per_minute = models.PositiveIntegerField(null=True, blank=True)
    concurrent_generations = models.PositiveIntegerField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True, help_text="Why, for the next operator.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The table keeps the name it had when these models lived in the api app.
        db_table = "api_accountratelimit"
        verbose_name = "custom rate limit"

    def __str__(self) -> str:
        return f"custom limits for {self.account}"


class RateCounter(models.Model):
    """One fixed window's count for one scope and kind, when no Redis is configured: the
    database, shared by every process, makes the counting correct across them."""

    bucket = models.CharField(max_length=64)
    window_number = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        # The table keeps the name it had when these models lived in the api app.
        db_table = "api_ratecounter"
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "window_number"], name="api_ratecounter_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.bucket} @{self.window_number}: {self.count}"


class ConcurrencySlot(models.Model):
    """A generation in flight for one scope, when no Redis is configured. A slot whose process
    died is dropped when its lease runs out."""

    scope = models.CharField(max_length=64)
    holder = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        # The table keeps the name it had when these models lived in the api app.
        db_table = "api_concurrencyslot"
        constraints = [
            models.UniqueConstraint(fields=["scope", "holder"], name="api_concurrencyslot_unique")
        ]
        indexes = [models.Index(fields=["scope", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.scope} held by {self.holder}"


class ModelOverride(models.Model):
    """An operator's change to one model of the catalog file, made in the admin and in force
    everywhere within CATALOG_CACHE_SECONDS (generation/catalog.py): its lifecycle, its upstream
    ids on a channel, its default size. Everything else about a model is the file's."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated (answers, with Deprecation and Sunset headers)"
        RETIRED = "retired", "Retired (410 model_retired)"

    model = models.CharField(max_length=64, unique=True, help_text="The model's public id.")
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        blank=True,
        help_text="Empty: the file's lifecycle. Set: this status, with the dates and "
        "replacement below (empty ones: none), replaces the file's.",
    )
    deprecated = models.DateField(null=True, blank=True, help_text="Deprecated since.")
    sunset = models.DateField(
        null=True, blank=True, help_text="A deprecated model answers 410 after this day (UTC)."
    )
    replacement = models.CharField(
        max_length=64, blank=True, help_text="The public id of the model to move to."
    )
    upstream_ids = models.TextField(
        blank=True,
        help_text="One line per channel, ids tried in order: 'byteplus: seedream-4-5-251128'. "
        "A channel left out keeps the file's ids.",
    )
    default_size = models.CharField(
        max_length=16, blank=True, help_text="A size or keyword; empty: the file's default."
    )
    note = models.CharField(max_length=255, blank=True, help_text="Why, for the next operator.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "catalog override"
        ordering = ["model"]

    def __str__(self) -> str:
        return f"override of {self.model}"
