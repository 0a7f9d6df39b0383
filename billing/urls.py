from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.ledger, name="ledger"),
]
