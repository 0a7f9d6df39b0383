from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from .models import User


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
    list_select_related = ("credit_account",)
    list_filter = ("is_active", "is_staff", ("closed_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined", "closed_at")}),
    )

    @admin.display(description="Balance (credits)", ordering="credit_account__balance_credits")
    def balance(self, user: User) -> int:
        # Read through the relation by name: accounts imports nothing from billing.
        account = getattr(user, "credit_account", None)
        return account.balance_credits if account else 0

    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
