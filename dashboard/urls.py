from __future__ import annotations

from django.urls import path

from . import (
    views,
    views_api_docs,
    views_gallery,
    views_legal,
    views_limits,
    views_playground,
    views_requests,
    views_spend,
)

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.docs, name="docs"),
    path("docs/api/", views_api_docs.api_reference, name="api-reference"),
    path("terms/", views_legal.legal_page, {"page": "terms"}, name="terms"),
    path("privacy/", views_legal.legal_page, {"page": "privacy"}, name="privacy"),
    path(
        "acceptable-use/", views_legal.legal_page, {"page": "acceptable-use"}, name="acceptable-use"
    ),
    path("dashboard/", views.overview, name="overview"),
    path("dashboard/usage/", views.usage, name="usage"),
    path("dashboard/usage.csv", views.usage_csv, name="usage-csv"),
    path("dashboard/usage-summary.csv", views.usage_summary_csv, name="usage-summary-csv"),
    path("dashboard/limits/", views_limits.limits, name="limits"),
    path("dashboard/alerts/", views_spend.alerts, name="alerts"),
    # Under the keys pages' prefix (keys.urls has no such path), but here: the page lists the
    # catalog's models and the cap's window, which keys may not import.
    path("dashboard/keys/<int:key_id>/spend/", views_spend.key_spend, name="key-spend"),
    path("dashboard/playground/", views_playground.playground, name="playground"),
    path("dashboard/playground/quote/", views_playground.quote, name="quote"),
    path(
        "dashboard/playground/generations/<str:public_id>/",
        views_playground.generation_card,
        name="generation",
    ),
    path("dashboard/requests/<str:public_id>/", views_requests.request_detail, name="request"),
    path("dashboard/gallery/", views_gallery.gallery_page, name="gallery"),
    path("dashboard/gallery/<str:token>/", views_gallery.image_detail, name="image"),
    path(
        "dashboard/gallery/<str:token>/download/",
        views_gallery.image_download,
        name="image-download",
    ),
    path("dashboard/gallery/<str:token>/delete/", views_gallery.image_delete, name="image-delete"),
    path(
        "dashboard/generations/<str:public_id>/layers.zip",
        views_gallery.layers_zip,
        name="layers-zip",
    ),
    path("dashboard/inputs/<str:token>/", views_gallery.input_image, name="input"),
    path(
        "dashboard/inputs/<str:token>/thumbnail/",
        views_gallery.input_thumbnail,
        name="input-thumbnail",
    ),
]
