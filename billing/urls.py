from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.ledger, name="ledger"),
    path("buy/", views.buy, name="buy"),
    path("redeem/", views.redeem, name="redeem"),
    path("purchases/<uuid:public_id>/", views.purchase, name="purchase"),
    path(
        "purchases/<uuid:public_id>/cancelled/", views.purchase_cancelled, name="purchase_cancelled"
    ),
]
