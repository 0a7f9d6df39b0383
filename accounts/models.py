"""Identity: a user signs in with an email address; there is no username."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # Emails are matched without regard to case: Ann@x.com and ann@x.com are one person.
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(
        default=True,
        help_text=(
            "Unticking this signs the user out and stops the keys of their personal account "
            "(an organisation's keys they made keep working)."
        ),
    )
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the customer closed the account (close_account)."
    )

    objects: ClassVar[UserManager] = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


class Account(models.Model):
    """Who owns money, keys, images, usage and limits: one person's personal account, or an
    organisation that several people belong to (``Membership``).

    Every user has exactly one personal account (``personal_owner``), made with the user. An
    organisation has members with roles; its keys, balance and images are its own and stay when
    a member leaves. Every app's owned rows point here (the README's "Organisations" says which).
    """

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        ORGANISATION = "organisation", "Organisation"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # An organisation's name; a personal account is shown by its owner's email.
    name = models.CharField(max_length=100, blank=True)
    personal_owner = models.OneToOneField(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="personal_account",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="personal", personal_owner__isnull=False)
                    | models.Q(kind="organisation", personal_owner__isnull=True)
                ),
                name="accounts_account_personal_has_owner",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="organisation", name=""),
                name="accounts_account_organisation_named",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.PERSONAL and self.personal_owner is not None:
            return f"{self.personal_owner} (personal)"
        return self.name

    @property
    def active(self) -> bool:
        """Whether its keys may be used: a personal account while its person is active (not
        closed or deactivated by an operator); an organisation always."""
        person = self.personal_owner
        return person is None or person.is_active

    @property
    def closed(self) -> bool:
        """A personal account is closed with its person (accounts.services.close_account)."""
        person = self.personal_owner
        return person is not None and person.closed_at is not None

    def contact_emails(self) -> list[str]:
        """Where the account's notices go (alerts, automatic top-up, failing webhooks): its
        owners' addresses; for a personal account, its person's."""
        return list(
            User.objects.filter(
                memberships__account=self,
                memberships__role=Role.OWNER,
                is_active=True,
                closed_at__isnull=True,
            )
            .order_by("pk")
            .values_list("email", flat=True)
        )


class Role(models.TextChoices):
    """What a member may do in an account (accounts.permissions says which role may what)."""

    OWNER = "owner", "Owner"  # billing and members, and everything a developer may
    DEVELOPER = "developer", "Developer"  # keys, playground, usage
    READER = "reader", "Reader"  # usage only


class Membership(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="accounts_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


class Invitation(models.Model):
    """An owner's invitation for an email address to join an organisation with a role.

    The link's token is emailed once and never kept: only its SHA-256 is stored (a 256-bit random
    token needs no slow hash), so a leaked database or admin screen cannot be used to join.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        User, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.email} to {self.account} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"
