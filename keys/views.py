"""The customer's API keys: create (shown once), list, rotate and revoke.

A new or rotated key is rendered straight into the response to the POST that made it, never
redirected through the session: the raw key is never stored anywhere, not even for a moment.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedRequest

from . import services
from .forms import KeyCreateForm, KeyLimitsForm
from .models import ApiKey


def _page(
    request: AuthenticatedRequest, form: KeyCreateForm, issued: services.IssuedKey | None = None
) -> HttpResponse:
    keys = ApiKey.objects.filter(user=request.user).order_by("-created_at")
    return render(
        request,
        "keys/list.html",
        {"keys": keys, "form": form, "issued": issued, "base_url": _base_url(request)},
    )


def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}/v1"


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: AuthenticatedRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, KeyCreateForm())
    form = KeyCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, form)
    issued = services.create_key(
        request.user,
        form.cleaned_data["name"],
        expires_at=form.expires_at(),
    )
    return _page(request, KeyCreateForm(), issued)


def _owned(request: AuthenticatedRequest, key_id: int) -> ApiKey:
    # Another customer's key id is a 404, exactly like one that does not exist.
    return get_object_or_404(ApiKey, pk=key_id, user=request.user)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def rotate(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    api_key = _owned(request, key_id)
    if request.method != "POST":
        return render(request, "keys/confirm.html", {"api_key": api_key, "action": "rotate"})
    try:
        issued = services.rotate_key(api_key)
    except services.KeyRevoked:
        messages.error(request, "A revoked key cannot be rotated.")
        return redirect("keys:list")
    return _page(request, KeyCreateForm(), issued)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def revoke(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    api_key = _owned(request, key_id)
    if request.method != "POST":
        return render(request, "keys/confirm.html", {"api_key": api_key, "action": "revoke"})
    services.revoke_key(api_key)
    messages.success(request, f"The key “{api_key.name}” is revoked. It stops working at once.")
    return redirect("keys:list")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def limits(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    api_key = _owned(request, key_id)
    fields = ("requests_per_minute", "images_per_minute", "concurrent_generations")
    form = KeyLimitsForm(
        request.POST or None, initial={name: getattr(api_key, name) for name in fields}
    )
    if request.method == "POST" and form.is_valid():
        services.set_key_limits(api_key, **{name: form.cleaned_data[name] for name in fields})
        messages.success(request, f"The limits of “{api_key.name}” are saved.")
        return redirect("keys:list")
    return render(request, "keys/limits.html", {"api_key": api_key, "form": form})
