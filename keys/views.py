"""The customer's API keys: create (shown once), list, rotate and revoke.

Making or rotating a key follows post/redirect/get: the POST answers with a redirect to the
list, so reloading, going back or sending the form twice never makes a second key, and only one
dialog ever opens. Each form carries a one-time token (keys.crypto.new_form_token): the POST
makes at most one key per token (keys.services.create_key_from_form) and seals the new secret
under it; the redirect hands the token to the browser in a short-lived cookie, and the list page
that follows opens the seal and empties it as it shows the secret (services.reveal). The raw key
is never stored in clear: not in the database, the session, a URL or a log.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action

from . import crypto, services
from .forms import KeyCreateForm, KeyLimitsForm
from .models import ApiKey

# The cookie that carries a form's token from the redirect to the page that shows the secret.
# Scoped to the keys pages, unreadable by scripts, sent only by this site, short-lived.
REVEAL_COOKIE = "seedream_new_key"


def _page(
    request: AuthenticatedRequest, form: KeyCreateForm, shown: services.Reveal | None = None
) -> HttpResponse:
    account = require(request, Action.MANAGE_KEYS)
    keys = ApiKey.objects.filter(account=account).select_related("user").order_by("-created_at")
    return render(
        request,
        "keys/list.html",
        {
            "keys": keys,
            "form": form,
            "issued": shown if shown and shown.raw_key else None,
            "base_url": _base_url(request),
        },
    )


def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}/v1"


def _form_token(request: HttpRequest) -> str:
    """The form's token, or a fresh one for a form that sent none (or not one of ours): that
    request still makes its key once, only without the guard against a repeat."""
    token = request.POST.get("token", "")
    return token if crypto.is_form_token(token) else crypto.new_form_token()


def _to_the_list(token: str) -> HttpResponse:
    response = redirect("keys:list")
    response.set_cookie(
        REVEAL_COOKIE,
        token,
        max_age=services.REVEAL_SECONDS,
        path=reverse("keys:list"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: AuthenticatedRequest) -> HttpResponse:
    account = require(request, Action.MANAGE_KEYS)
    if request.method == "POST":
        form = KeyCreateForm(request.POST)
        if not form.is_valid():
            return _page(request, form)
        token = _form_token(request)
        services.create_key_from_form(
            account,
            request.user,
            form.cleaned_data["name"],
            token=token,
            expires_at=form.expires_at(),
        )
        return _to_the_list(token)

    shown = None
    token = request.COOKIES.get(REVEAL_COOKIE, "")
    if crypto.is_form_token(token):
        shown = services.reveal(request.user, token)
        if shown is not None and shown.raw_key is None:
            messages.info(
                request,
                f"The key “{shown.api_key.name}” was made and shown already: its secret is not "
                "shown again. If you did not copy it, rotate the key for a new one.",
            )
    services.forget_unshown_secrets(request.user)
    response = _page(request, KeyCreateForm(initial={"token": crypto.new_form_token()}), shown)
    if REVEAL_COOKIE in request.COOKIES:
        response.delete_cookie(REVEAL_COOKIE, path=reverse("keys:list"), samesite="Strict")
    return response


def _owned(request: AuthenticatedRequest, key_id: int) -> ApiKey:
    # Another account's key id is a 404, exactly like one that does not exist.
    account = require(request, Action.MANAGE_KEYS)
    return get_object_or_404(ApiKey, pk=key_id, account=account)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def rotate(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    api_key = _owned(request, key_id)
    if request.method != "POST":
        return render(
            request,
            "keys/confirm.html",
            {"api_key": api_key, "action": "rotate", "token": crypto.new_form_token()},
        )
    token = _form_token(request)
    try:
        services.rotate_key_from_form(api_key, request.user, token=token)
    except services.KeyRevoked:
        messages.error(request, "A revoked key cannot be rotated.")
        return redirect("keys:list")
    return _to_the_list(token)


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
