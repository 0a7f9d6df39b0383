"""Organisation pages, under /dashboard/organisations/ (config/urls.py)."""

from __future__ import annotations

from django.urls import path

from . import views_organisations as views

app_name = "organisations"

urlpatterns = [
    path("", views.organisation_list, name="list"),
    path("switch/", views.switch, name="switch"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.invite, name="invite"),
    path("members/leave/", views.leave, name="leave"),
    path("members/<int:membership_id>/role/", views.change_role, name="change-role"),
    path("members/<int:membership_id>/remove/", views.remove, name="remove"),
    path("invitations/<int:invitation_id>/revoke/", views.revoke, name="revoke"),
    # The emailed link: the token is its only secret (only its hash is stored).
    path("invitations/<str:token>/", views.accept, name="accept"),
]
