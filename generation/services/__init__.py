"""The generation domain's services: what other apps (the API, the dashboard, accounts) and the
Celery tasks call. The pipeline and each of its steps live in the modules beside this one:

- ``pipeline``: admit -> reserve -> run -> settle, written once (async), the playground's
  ``submit_generation`` and the API's jobs (``submit_job``);
- ``jobs``: generations as jobs: found, listed and cancelled by their owner;
- ``reserve``: the quote, the row and the hold (and the Idempotency-Key's lookup);
- ``run``: the upstream calls, and a queued run on a Celery worker;
- ``settle``: the delivered images stored and charged, the rest released, once;
- ``reconcile``: rows past their deadline released, lost or abandoned runs sent again;
- ``images``: stored images, their URLs, and their deletion;
- ``spend``: a key's spend controls applied to a generation (its models, its cap);
- ``alerts``: the low-balance and key-cap alerts a hold sets off, told by a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from billing import services as billing

from ..catalog import ModelInfo, resolve_size
from ..spec import IMAGES_MAX, GenerationSpec, build_spec
from .alerts import send_key_budget_alert, send_low_balance_alert
from .images import (
    delete_image,
    erase_customer_content,
    image_storage_name,
    image_url,
    purge_expired_images,
    read_image,
    sweep_orphan_files,
    thumbnail_url,
)
from .pipeline import admit, open_generation, run_generation, submit_generation, submit_job
from .reconcile import (
    abandon_generation,
    reconcile_stuck_generations,
    release_work_of_closing_account,
)
from .reserve import (
    IdempotentReplay,
    begin_generation,
    is_idempotent_repeat,
    quote,
    reserve_generation,
)
from .run import RunResult, produce_images, run_queued_generation, upstream_request
from .settle import (
    Completed,
    FailedOutcome,
    complete_generation,
    failure_error,
    settle_generation,
)
from .spend import check_model_allowed, key_budget_headers

__all__ = [
    "Completed",
    "FailedOutcome",
    "GenerationSpec",
    "IdempotentReplay",
    "RunResult",
    "abandon_generation",
    "admit",
    "begin_generation",
    "build_spec",
    "check_model_allowed",
    "complete_generation",
    "delete_image",
    "erase_customer_content",
    "failure_error",
    "image_storage_name",
    "image_url",
    "is_idempotent_repeat",
    "key_budget_headers",
    "model_object",
    "open_generation",
    "pricing_object",
    "produce_images",
    "purge_expired_images",
    "quote",
    "read_image",
    "reconcile_stuck_generations",
    "release_work_of_closing_account",
    "reserve_generation",
    "run_generation",
    "run_queued_generation",
    "send_key_budget_alert",
    "send_low_balance_alert",
    "settle_generation",
    "submit_generation",
    "submit_job",
    "sweep_orphan_files",
    "thumbnail_url",
    "upstream_request",
]


def model_object(model: ModelInfo, rules: Mapping[str, billing.Rule]) -> dict[str, Any]:
    """One model as GET /v1/models answers it (the docs page shows the same), with its price
    rule (``rules``: billing.price_rules()), so a client can price a request without asking."""
    rule = rules.get(model.id)
    default_price = rule.tier(resolve_size(model, None).most_pixels).credits if rule else None
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": "bytedance",
        "name": model.name,
        # The price of one image at the model's default size (null: not for sale).
        "price_per_image_credits": default_price,
        "price_per_image_usd": billing.format_usd(default_price) if default_price else None,
        "price_per_image_credits_by_size_tier": (
            {tier.name: tier.credits for tier in rule.tiers} if rule else {}
        ),
        "pricing": pricing_object(rule),
        "default_size": model.default_size,
        "size_keywords": list(model.size_keywords),
        "min_pixels": model.min_pixels,
        "max_pixels": model.max_pixels,
        "max_aspect_ratio": model.max_aspect_ratio,
        "supports_seed": model.supports_seed,
        "supports_guidance_scale": model.supports_guidance_scale,
        # Beyond OpenAI's shape (its SDKs keep unknown fields): what a client needs to build a
        # valid request, and the model's lifecycle.
        "status": model.lifecycle(),
        "sunset": model.sunset.isoformat() if model.sunset else None,
        "replacement": model.replacement or None,
        "aliases": list(model.aliases),
        "upstream_ids": [i for ids in model.upstream_ids.values() for i in ids],
        "modes": list(model.modes),
        "sizes": {
            "keywords": dict(model.keyword_sizes),
            "default": model.default_size,
            "min_pixels": model.min_pixels,
            "max_pixels": model.max_pixels,
            "aspect_ratio": [model.min_aspect, model.max_aspect],
            "recommended": model.recommended_sizes,
            # A keyword may be delivered up to this many times its nominal pixels (within the
            # window), and is held at the tier that reaches.
            "keyword_reach": model.keyword_reach,
        },
        "limits": {
            "max_images": IMAGES_MAX,
            "max_reference_images": model.max_references,
            "reference_max_bytes": model.reference_max_bytes,
            "reference_formats": list(model.reference_formats),
            "max_layers": model.max_layers,
        },
    }


def pricing_object(rule: billing.Rule | None) -> dict[str, Any] | None:
    """A price rule as the API shows it: every figure needed to price a request (null: the
    model is not for sale)."""
    if rule is None:
        return None
    return {
        "unit": "credits",
        "credits_per_usd": settings.CREDITS_PER_USD,
        # Each delivered image (each layer too) by its pixels (width x height): the first tier
        # whose max_pixels it does not pass; the last tier (max_pixels null) takes the rest.
        "image_tiers": [
            {
                "name": tier.name,
                "max_pixels": tier.max_pixels,
                "credits": tier.credits,
                "usd": billing.format_usd(tier.credits),
            }
            for tier in rule.tiers
        ],
        # Per reference image sent, per upstream call (one call per image asked for), beyond
        # the free ones; a call that delivers nothing pays none.
        "reference_image": {
            "credits": rule.reference_credits,
            "usd": billing.format_usd(rule.reference_credits),
            "free_per_call": rule.free_references,
        },
        "version": rule.version,
    }
