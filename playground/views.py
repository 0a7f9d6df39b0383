"""The browser side of the generation domain: the public home page and the dashboard overview.
The playground and gallery arrive with their own issue."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.http import AuthenticatedRequest
from api import catalog
from api.models import Generation
from billing import services as billing
from keys.models import ApiKey

from . import usage as usage_rows


def home(request: HttpRequest) -> HttpResponse:
    prices = {(p.model, p.size_tier): p.credits_per_image for p in billing.price_list()}
    models = [
        {
            "info": model,
            "credits": prices.get((model.id, "")),
            "usd": billing.format_usd(prices[(model.id, "")]) if (model.id, "") in prices else None,
        }
        for model in catalog.all_models()
    ]
    return render(
        request,
        "playground/home.html",
        {
            "models": models,
            "base_url": f"{request.scheme}://{request.get_host()}/v1",
            "credits_per_usd": settings.CREDITS_PER_USD,
        },
    )


@login_required
def overview(request: AuthenticatedRequest) -> HttpResponse:
    balance = billing.balance_credits(request.user)
    active_keys = ApiKey.objects.filter(user=request.user, revoked_at__isnull=True).count()
    generations = Generation.objects.filter(user=request.user).order_by("-created_at")[:10]
    return render(
        request,
        "playground/overview.html",
        {
            "balance_credits": balance,
            "balance_usd": billing.format_usd(balance),
            "credits_per_usd": settings.CREDITS_PER_USD,
            "active_keys": active_keys,
            "generations": generations,
            "base_url": f"{request.scheme}://{request.get_host()}/v1",
        },
    )


@login_required
def usage(request: AuthenticatedRequest) -> HttpResponse:
    form = usage_rows.UsageFilterForm(request.user, request.GET or None)
    rows = usage_rows.filtered(request.user, form)
    page = usage_rows.page_after(rows, request.GET.get("after"))
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "playground/usage.html",
        {"form": form, "page": page, "filters": query.urlencode()},
    )


@login_required
def usage_csv(request: AuthenticatedRequest) -> StreamingHttpResponse:
    form = usage_rows.UsageFilterForm(request.user, request.GET or None)
    rows = usage_rows.filtered(request.user, form)
    response = StreamingHttpResponse(usage_rows.csv_lines(rows), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="seedream-usage-{stamp}.csv"'
    return response


# The errors a client can meet, for the docs page: (status, type, code, when).
API_ERRORS = [
    (400, "invalid_request_error", "invalid_value", "A parameter is wrong; param names it."),
    (400, "invalid_request_error", "missing_required_parameter", "model or prompt is missing."),
    (400, "invalid_request_error", "invalid_json", "The body is not a JSON object."),
    (400, "invalid_request_error", "content_policy_violation",
     "The prompt or the generated image was blocked. Not charged."),
    (400, "invalid_request_error", "idempotency_key_reused",
     "The Idempotency-Key was used with another body."),
    (401, "invalid_request_error", "invalid_api_key",
     "The key is missing, malformed, unknown, revoked or expired."),
    (402, "insufficient_quota", "insufficient_quota",
     "The balance does not cover the request; the message gives both."),
    (404, "invalid_request_error", "model_not_found", "No such model."),
    (405, "invalid_request_error", "method_not_allowed", "Another HTTP method was used."),
    (409, "invalid_request_error", "idempotency_request_in_progress",
     "The first request with this Idempotency-Key is still running; retry."),
    (413, "invalid_request_error", "request_too_large", "The body is too large."),
    (415, "invalid_request_error", "unsupported_media_type", "The body is not sent as JSON."),
    (502, "server_error", "upstream_error", "The image service failed. Not charged."),
    (503, "server_error", "service_unavailable", "Generation is unavailable. Not charged."),
    (503, "server_error", "upstream_busy", "The image service is busy; see Retry-After."),
    (503, "server_error", "upstream_timeout", "The image service timed out. Not charged."),
]  # fmt: skip


def docs(request: HttpRequest) -> HttpResponse:
    """The public API documentation, built from the live catalog, prices and settings."""
    prices = {(p.model, p.size_tier): p.credits_per_image for p in billing.price_list()}
    models = [
        {
            "info": model,
            "prices": {
                tier or "any size": credits
                for (model_id, tier), credits in sorted(prices.items())
                if model_id == model.id
            },
        }
        for model in catalog.all_models()
    ]
    return render(
        request,
        "playground/docs.html",
        {
            "models": models,
            "base_url": f"{request.scheme}://{request.get_host()}/v1",
            "credits_per_usd": settings.CREDITS_PER_USD,
            "prompt_max_chars": settings.PROMPT_MAX_CHARS,
            "max_body_bytes": settings.API_MAX_BODY_BYTES,
            "errors": API_ERRORS,
        },
    )
