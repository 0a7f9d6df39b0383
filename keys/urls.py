from __future__ import annotations

from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("", views.key_list, name="list"),
    path("<int:key_id>/rotate", views.rotate, name="rotate"),
    path("<int:key_id>/revoke", views.revoke, name="revoke"),
    path("<int:key_id>/limits", views.limits, name="limits"),
]
