from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.ledger, name="ledger"),
    path("buy/", views.buy, name="buy"),
    path("redeem/", views.redeem, name="redeem"),
    path("details/", views.billing_details, name="details"),
    path("auto-top-up/", views.auto_top_up_settings, name="auto_top_up"),
    path("purchases/<uuid:public_id>/", views.purchase, name="purchase"),
    path(
        "purchases/<uuid:public_id>/cancelled/", views.purchase_cancelled, name="purchase_cancelled"
    ),
    path("purchases/<uuid:public_id>/invoice/", views.invoice, name="invoice"),
]
