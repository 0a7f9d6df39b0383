from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from . import organisations
from .models import Account, Invitation, Membership, User


class UserCreateForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    ordering = ("-date_joined",)
    list_display = ("email", "name", "balance", "is_active", "is_staff", "date_joined", "closed_at")
    list_select_related = ("personal_account__credit_account",)
    list_filter = ("is_active", "is_staff", ("closed_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined", "closed_at")}),
    )

    @admin.display(
        description="Balance (credits)",
        ordering="personal_account__credit_account__balance_credits",
    )
    def balance(self, user: User) -> int:
        """Their personal account's balance (an organisation's is on its own row)."""
        # Read through the relation by name: accounts imports nothing from billing.
        account = getattr(getattr(user, "personal_account", None), "credit_account", None)
        return account.balance_credits if account else 0

    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # A person's own account is theirs for good; an organisation's members leave on its
        # Members page, which keeps it an owner and forgets their saved card.
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "balance", "created_at", "adjust_link")
    list_select_related = ("personal_owner", "credit_account")
    list_filter = ("kind",)
    search_fields = ("name", "personal_owner__email", "memberships__user__email")
    readonly_fields = ("kind", "personal_owner", "created_at")
    inlines = (MembershipInline,)

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # An account owns money records: it is never deleted (a person's account is closed).
        return False

    @admin.display(description="Balance (credits)", ordering="credit_account__balance_credits")
    def balance(self, account: Account) -> int:
        credit = getattr(account, "credit_account", None)
        return credit.balance_credits if credit else 0

    @admin.display(description="Adjust")
    def adjust_link(self, account: Account) -> str:
        # billing's audited adjustment, for a person's account or an organisation alike.
        url = reverse("admin:billing_adjust_credits", args=[account.pk])
        return format_html('<a href="{}">Adjust credits</a>', url)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations as history: who invited whom, and what became of it. The token was emailed
    and never kept; its hash is not shown either (it is of no use to a reader)."""

    list_display = ("email", "account", "role", "status", "invited_by", "created_at", "expires_at")
    list_filter = ("role",)
    list_select_related = ("account", "invited_by")
    search_fields = ("email", "account__name", "invited_by__email")
    fields = (
        "account", "email", "role", "invited_by", "created_at", "expires_at",
        "accepted_at", "accepted_by", "revoked_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # An invitation is made by an owner on the members page, which emails the link.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    @admin.action(description="Revoke the selected invitations")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        for invitation in queryset:
            organisations.revoke(invitation)
