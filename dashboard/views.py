"""The browser side of the generation domain: the public home page and the dashboard overview.
The playground and gallery arrive with their own issue."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action
from billing import services as billing
from generation import catalog, provenance, ratelimits
from generation import services as api_services
from generation.models import Generation, Image
from keys.models import ApiKey

from . import overview as overview_figures
from . import usage as usage_rows


def _price_lines(rule: billing.Rule | None) -> dict[str, Any] | None:
    """A model's live price rule as the home and docs pages show it (None: not for sale)."""
    if rule is None:
        return None
    tiers = []
    lower: int | None = None
    for tier in rule.tiers:
        if len(rule.tiers) == 1:
            bound = "any size"
        elif tier.max_pixels is not None and tier is not rule.tiers[-1]:
            bound = f"up to {tier.max_pixels:,} pixels"
        else:
            bound = f"above {lower:,} pixels"
        lower = tier.max_pixels
        tiers.append(
            {
                "name": tier.name,
                "bound": bound,
                "credits": tier.credits,
                "usd": billing.format_usd(tier.credits),
            }
        )
    references = None
    if rule.reference_credits:
        free = rule.free_references
        references = {
            "credits": rule.reference_credits,
            "usd": billing.format_usd(rule.reference_credits),
            "free": free,
        }
    return {"tiers": tiers, "references": references}


def _default_price(model: catalog.ModelInfo, rule: billing.Rule | None) -> int | None:
    """What one image at the model's default size is held at."""
    if rule is None:
        return None
    return rule.tier(catalog.resolve_size(model, None).most_pixels).credits


# How many showcase images the home page shows, newest marked first.
SHOWCASE_IMAGES = 8
# The batches the pricing section prices, per model.
PRICED_BATCHES = (100, 1000)


def _batch_prices(rules: dict[str, billing.Rule]) -> list[dict[str, Any]]:
    """What 100 and 1,000 images cost on each model on sale, at its default size, from the same
    live rules as the price table, /v1/models and the docs."""
    rows = []
    for model in catalog.all_models():
        each = _default_price(model, rules.get(model.id))
        if each is None or model.lifecycle == "retired":
            continue
        rows.append(
            {
                "info": model,
                "each": each,
                "batches": [
                    {
                        "images": images,
                        "credits_label": f"{each * images:,}",
                        "usd": billing.format_usd_for_people(each * images),
                    }
                    for images in PRICED_BATCHES
                ],
            }
        )
    return rows


def _showcase(host: str) -> list[dict[str, Any]]:
    """The images the operator marked for the home page, by their public URLs."""
    images = (
        Image.objects.filter(showcase=True)
        .select_related("generation")
        .order_by("-created_at", "-id")[:SHOWCASE_IMAGES]
    )
    return [
        {
            "url": api_services.image_url(image, host),
            "thumbnail": api_services.thumbnail_url(image),
            "prompt": image.generation.prompt,
            "model": image.generation.model,
            "width": image.width,
            "height": image.height,
        }
        for image in images
    ]


def home(request: HttpRequest) -> HttpResponse:
    """The storefront: what the product is, example outputs, a code sample, live prices, what a
    batch costs, how credits work."""
    catalog.refresh()
    rules = billing.price_rules()
    host = f"{request.scheme}://{request.get_host()}"
    models = [
        {"info": model, "prices": _price_lines(rules.get(model.id))}
        for model in catalog.all_models()
    ]
    # A worked example of the hold and the settlement: 4 images asked for, 3 delivered.
    example = None
    on_sale = [
        (m, price)
        for m in catalog.all_models()
        if (price := _default_price(m, rules.get(m.id))) is not None
    ]
    if on_sale:
        model, each = on_sale[0]
        example = {
            "model": model.id,
            "size": model.default_size,
            "price": each,
            "held": 4 * each,
            "charged": 3 * each,
            "released": each,
        }
    return render(
        request,
        "dashboard/home.html",
        {
            "models": models,
            "example": example,
            "showcase": _showcase(host),
            "batch_prices": _batch_prices(rules),
            "batch_labels": [f"{images:,} images" for images in PRICED_BATCHES],
            "base_url": f"{host}/v1",
            "image_base": settings.IMAGE_BASE_URL or host,
            "credits_per_usd": settings.CREDITS_PER_USD,
        },
    )


@login_required
def overview(request: AuthenticatedRequest) -> HttpResponse:
    account = require(request, Action.VIEW_USAGE)
    balance = billing.balance_credits(account)
    active_keys = ApiKey.objects.filter(account=account, revoked_at__isnull=True).count()
    generations = Generation.objects.filter(account=account).order_by("-created_at")[:10]
    month = overview_figures.month_spend(account)
    days = overview_figures.last_days(account)
    return render(
        request,
        "dashboard/overview.html",
        {
            "balance_credits": balance,
            "credits_per_usd": settings.CREDITS_PER_USD,
            "active_keys": active_keys,
            "generations": generations,
            "month": month,
            "days": days,
            "spend_chart": overview_figures.chart(days, "credits"),
            "images_chart": overview_figures.chart(days, "images"),
            "base_url": f"{request.scheme}://{request.get_host()}/v1",
            "first_steps": overview_figures.first_steps(account),
        },
    )


@login_required
def usage(request: AuthenticatedRequest) -> HttpResponse:
    account = require(request, Action.VIEW_USAGE)
    form = usage_rows.UsageFilterForm(account, request.GET or None)
    rows = usage_rows.filtered(account, form)
    # The reference images each request was made from: one query for the page.
    page = usage_rows.page_after(rows.prefetch_related("inputs"), request.GET.get("after"))
    query = request.GET.copy()
    query.pop("after", None)
    # Over the same filters, the chart: the query behind GET /v1/usage/images.
    summary = usage_rows.summary(account, form)
    return render(
        request,
        "dashboard/usage.html",
        {
            "form": form,
            "page": page,
            "filters": query.urlencode(),
            "summary": summary,
            "credits_chart": usage_rows.chart(summary, "credits", "credits"),
            "images_chart": usage_rows.chart(summary, "images", "images"),
            "summary_rows": [
                (usage_rows.bucket_label(bucket, summary.hourly), bucket)
                for bucket in reversed(summary.buckets)
            ],
        },
    )


@login_required
def usage_csv(request: AuthenticatedRequest) -> StreamingHttpResponse:
    account = require(request, Action.VIEW_USAGE)
    form = usage_rows.UsageFilterForm(account, request.GET or None)
    rows = usage_rows.filtered(account, form)
    response = StreamingHttpResponse(usage_rows.csv_lines(rows), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="seedream-usage-{stamp}.csv"'
    return response


@login_required
def usage_summary_csv(request: AuthenticatedRequest) -> StreamingHttpResponse:
    """The page's filters as buckets (a day, or an hour for a short range) and groups, from the
    query behind GET /v1/usage/images."""
    account = require(request, Action.VIEW_USAGE)
    form = usage_rows.UsageFilterForm(account, request.GET or None)
    summary = usage_rows.summary(account, form, group=True)
    response = StreamingHttpResponse(usage_rows.summary_csv_lines(summary), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="seedream-usage-summary-{stamp}.csv"'
    return response


# The errors a client can meet, for the docs page: (status, type, code, when).
API_ERRORS = [
    (400, "invalid_request_error", "invalid_value",
     "A parameter or the Idempotency-Key header is wrong; param names it."),
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
    (402, "insufficient_quota", "key_budget_exceeded",
     "The request would pass the key's spend cap in its window. Not charged."),
    (403, "permission_error", "ip_not_allowed",
     "The key's address allowlist does not include the client's address."),
    (403, "permission_error", "model_not_allowed",
     "The key's model allowlist does not include this model."),
    (404, "invalid_request_error", "model_not_found", "No such model."),
    (404, "invalid_request_error", "unknown_url", "No such endpoint under /v1."),
    (405, "invalid_request_error", "method_not_allowed", "Another HTTP method was used."),
    (408, "invalid_request_error", "request_timeout",
     "The body did not arrive within the server's time for it."),
    (409, "invalid_request_error", "idempotency_request_in_progress",
     "The first request with this Idempotency-Key is still running; retry."),
    (413, "invalid_request_error", "request_too_large",
     "The body is too large; it was refused before being read."),
    (415, "invalid_request_error", "unsupported_media_type", "The body is not sent as JSON."),
    (429, "rate_limit_error", "rate_limit_requests",
     "Over the requests-per-minute limit; wait Retry-After seconds. Not charged."),
    (429, "rate_limit_error", "rate_limit_images",
     "Over the images-per-minute limit; wait Retry-After seconds. Not charged."),
    (429, "rate_limit_error", "rate_limit_concurrency",
     "Too many generations at once; retry when one ends. Not charged."),
    (429, "rate_limit_error", "too_many_invalid_keys",
     "Too many requests with a wrong key from your address; fix the key, retry in a minute."),
    (502, "server_error", "upstream_error", "The image service failed. Not charged."),
    (503, "server_error", "model_not_priced", "The model is not on sale right now. Not charged."),
    (503, "server_error", "service_unavailable", "Generation is unavailable. Not charged."),
    (503, "server_error", "upstream_busy", "The image service is busy; see Retry-After."),
    (503, "server_error", "upstream_timeout", "The image service timed out. Not charged."),
    (503, "server_error", "storage_error", "Made but not saved; retry. Not charged."),
]  # fmt: skip

# What tells a client to slow down, for the docs' rate limits section:
# (status, code, Retry-After seconds, when). The headers are api/refusals.py's, api/views.py's
# and api/auth.py's.
SLOW_DOWN = [
    (503, "upstream_busy", 5,
     "The image service stayed busy through our own retries. Nothing was charged."),
    (429, "rate_limit_requests, rate_limit_images, rate_limit_concurrency", "up to 60",
     "Over one of your account's (or your key's) limits; see below. Nothing was charged."),
    (409, "idempotency_request_in_progress", 1,
     "A repeat of a request still running did not see it finish in time."),
]  # fmt: skip


def docs(request: HttpRequest) -> HttpResponse:
    """The public API documentation, built from the live catalog, prices and settings."""
    catalog.refresh()
    rules = billing.price_rules()
    all_models = catalog.all_models()
    models = [{"info": model, "prices": _price_lines(rules.get(model.id))} for model in all_models]
    host = f"{request.scheme}://{request.get_host()}"
    example_balance = 25 * settings.CREDITS_PER_USD
    credits_example = {
        "object": "credit_balance",
        "balance": example_balance,
        "balance_usd": billing.format_usd(example_balance),
        "currency": "usd",
        "credits_per_usd": settings.CREDITS_PER_USD,
    }
    return render(
        request,
        "dashboard/docs.html",
        {
            "models": models,
            "transparency_models": catalog.transparency_models(),
            "model_example": (
                json.dumps(api_services.model_object(all_models[0], rules), indent=2)
                if all_models
                else ""
            ),
            "credits_example": json.dumps(credits_example, indent=2),
            "response_model": all_models[0] if all_models else None,
            "response_tokens": (
                catalog.resolve_size(all_models[0], None).pixels // 256 if all_models else 16384
            ),
            "response_price": (
                _default_price(all_models[0], rules.get(all_models[0].id)) if all_models else None
            ),
            "base_url": f"{host}/v1",
            "image_base": settings.IMAGE_BASE_URL or host,
            "credits_per_usd": settings.CREDITS_PER_USD,
            "prompt_max_chars": settings.PROMPT_MAX_CHARS,
            "max_body_bytes": settings.API_MAX_BODY_BYTES,
            "idempotency_hours": settings.IDEMPOTENCY_WINDOW_SECONDS // 3600,
            "idempotency_wait_seconds": settings.IDEMPOTENCY_WAIT_SECONDS,
            # Read with a default: the retention job may not be deployed everywhere yet.
            "image_retention_days": getattr(settings, "IMAGE_RETENTION_DAYS", 0),
            "upstream_retries": settings.UPSTREAM_MAX_RETRIES,
            "generation_timeout_seconds": settings.GENERATION_TIMEOUT_SECONDS,
            # The models whose time budget is their own (the others have the default).
            "longer_time_budgets": [
                model
                for model in all_models
                if model.generation_timeout_seconds != settings.GENERATION_TIMEOUT_SECONDS
            ],
            "errors": API_ERRORS,
            "slow_down": SLOW_DOWN,
            "tiers": ratelimits.tiers(),
            "window_seconds": settings.RATE_LIMIT_WINDOW_SECONDS,
            "c2pa_signed": provenance.signs(),
        },
    )
