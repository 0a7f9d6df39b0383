from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from api import views as api_views
from billing.views import stripe_webhook
from dashboard import errors

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
    path("dashboard/organisations/", include("accounts.organisation_urls")),
    path("admin/", admin.site.urls),
]

# /v1 answers its errors in OpenAI's JSON shape; every other path gets a page in the site's
# layout (404: templates/404.html, drawn by Django's own view from api.views.handler404).
handler404 = "api.views.handler404"


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return api_views.handler500(request)
    return errors.server_error(request)
