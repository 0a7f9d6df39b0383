"""The browser side. For now only the home page, which points at the API and its quickstart;
the playground and gallery arrive with their own issue."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from api import catalog
from billing import services as billing


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
