from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("api.urls")),
    path("", include("playground.urls")),
    path("accounts/", include("allauth.urls")),
    path("dashboard/keys/", include("keys.urls")),
    path("dashboard/billing/", include("billing.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "api.views.handler404"
handler500 = "api.views.handler500"
