from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from billing.views import stripe_webhook

urlpatterns = [
    path("", include("server.urls")),
    path("", include("api.urls")),
    path("", include("dashboard.urls")),
    path("accounts/", include("allauth.urls")),
    path("dashboard/keys/", include("keys.urls")),
    path("dashboard/webhooks/", include("webhooks.urls")),
    path("dashboard/billing/", include("billing.urls")),
    # Register this address in Stripe's dashboard (see README, "Card payments").
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("dashboard/account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "api.views.handler404"
handler500 = "api.views.handler500"
