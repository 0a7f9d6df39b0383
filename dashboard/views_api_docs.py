"""The API reference page: the OpenAPI document of /v1 (GET /v1/openapi.json, api/openapi.py)
rendered by Swagger UI, from drf-spectacular-sidecar's released files (a kept package, nothing
vendored). The page fetches the document by URL: the browser side never imports api/."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


def api_reference(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/api_reference.html",
        {"spec_url": reverse("api:openapi"), "docs_url": reverse("dashboard:docs")},
    )
