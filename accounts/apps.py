from __future__ import annotations

from django.apps import AppConfig, apps
from django.conf import settings

# What the admin calls the identity apps. allauth's "account" app is also called "Accounts", so
# the admin index showed two ACCOUNTS sections: each gets a name of its own.
ADMIN_APP_NAMES = {
    "account": "Sign-in",  # allauth: the email addresses people sign in with
    "mfa": "Two-factor authentication",
}


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customers"

    def ready(self) -> None:
        from django.contrib import admin

        from . import admin_sign_in, checks, receivers  # noqa: F401  (they register themselves)

        admin_sign_in.secure(admin.site)
        admin.site.site_header = f"{settings.SITE_NAME} administration"
        admin.site.site_title = f"{settings.SITE_NAME} admin"
        admin.site.index_title = "Administration"
        for label, name in ADMIN_APP_NAMES.items():
            if apps.is_installed(f"allauth.{label}"):
                apps.get_app_config(label).verbose_name = name
