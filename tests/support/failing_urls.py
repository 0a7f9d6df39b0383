"""The site's URLs plus two that fail on purpose, for the error-page tests: one a page, one under
/v1. Tests point ROOT_URLCONF here."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config import urls as site


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a test's deliberate failure")


urlpatterns = [
    path("dashboard/explode/", explode),
    path("v1/explode", explode),
    *site.urlpatterns,
]
handler404 = site.handler404
handler500 = site.handler500
