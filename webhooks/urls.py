from __future__ import annotations

from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("<int:endpoint_id>/", views.endpoint_detail, name="detail"),
    path("<int:endpoint_id>/rotate", views.rotate, name="rotate"),
    path("<int:endpoint_id>/disable", views.disable, name="disable"),
    path("<int:endpoint_id>/enable", views.enable, name="enable"),
    path("<int:endpoint_id>/test", views.send_test, name="test"),
    path("<int:endpoint_id>/messages/<int:message_id>/resend", views.resend, name="resend"),
]
