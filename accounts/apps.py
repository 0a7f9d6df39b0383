from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from . import admin_sign_in, checks  # noqa: F401  (checks register themselves)

        admin_sign_in.secure(admin.site)
