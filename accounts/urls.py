from __future__ import annotations

from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("close/", views.close_account, name="close"),
    path("closed/", views.closed, name="closed"),
]
