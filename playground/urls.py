from __future__ import annotations

from django.urls import path

from . import views

app_name = "playground"

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.docs, name="docs"),
    path("dashboard/", views.overview, name="overview"),
    path("dashboard/usage/", views.usage, name="usage"),
    path("dashboard/usage.csv", views.usage_csv, name="usage-csv"),
]
