from __future__ import annotations

from django.urls import path, re_path

from . import jobs, openapi, usage, views

app_name = "api"

urlpatterns = [
    path("v1/images/generations", views.images_generations, name="images-generations"),
    path(
        "v1/images/generations/<str:job_id>",
        jobs.generation_detail,
        name="images-generation",
    ),
    path(
        "v1/images/generations/<str:job_id>/cancel",
        jobs.generation_cancel,
        name="images-generation-cancel",
    ),
    path("v1/images/edits", views.images_edits, name="images-edits"),
    path("v1/images/quote", views.images_quote, name="images-quote"),
    path("v1/models", views.models_list, name="models"),
    path("v1/models/<str:model_id>", views.model_detail, name="model"),
    path("v1/credits", views.credits, name="credits"),
    path("v1/usage/images", usage.images_usage, name="usage-images"),
    path("v1/openapi.json", openapi.openapi_json, name="openapi"),
    re_path(r"^v1/(?P<path>.*)$", views.not_found),
    re_path(
        r"^img/(?P<token>[^/.]+)\.(?P<extension>[a-z]+)$", views.hosted_image, name="hosted-image"
    ),
    re_path(r"^img/t/(?P<token>[^/.]+)\.webp$", views.hosted_thumbnail, name="thumbnail"),
]
