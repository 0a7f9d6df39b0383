"""A request's own page: what was asked (its inputs), what came out (its images), what it cost
(its ledger lines) and what went wrong (its error), for any generation, from the API or the
playground. Only its owner sees it: anyone else gets the same 404 as for no such request.

Linked from the overview's recent generations, the usage page's rows, the billing history's
generation lines (``ledger_links``, registered with billing in ``DashboardConfig.ready``), the
playground's cards and each gallery image's page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action
from billing.models import LedgerEntry
from generation import catalog
from generation.models import LEDGER_REFERENCE_PREFIX, Generation

from . import live


def ledger_links(owner: Any, references: Sequence[str]) -> Mapping[str, str]:
    """The request page of each of ``owner``'s generations among ledger ``references``."""
    ids = {
        int(reference.removeprefix(LEDGER_REFERENCE_PREFIX)): reference
        for reference in references
        if reference.startswith(LEDGER_REFERENCE_PREFIX)
        and reference.removeprefix(LEDGER_REFERENCE_PREFIX).isdigit()
    }
    found = Generation.objects.filter(account=owner, pk__in=ids).values_list("pk", "public_id")
    return {ids[pk]: reverse("dashboard:request", args=[public_id]) for pk, public_id in found}


@login_required
@require_safe
def request_detail(request: AuthenticatedRequest, public_id: str) -> HttpResponse:
    generation = get_object_or_404(
        Generation.objects.select_related("api_key"),
        public_id=public_id,
        account=require(request, Action.VIEW_USAGE),
    )
    # Its ledger lines, oldest first (reading billing's table for a queryset; never writing it).
    charges = list(
        LedgerEntry.objects.filter(
            account__owner_id=generation.account_id, reference=generation.ledger_reference
        ).order_by("id")
    )
    model = catalog.get_model(generation.model)
    context = {
        "g": generation,
        "model_name": model.name if model else generation.model,
        "images": list(generation.images.order_by("index")),
        "inputs": list(generation.inputs.order_by("index")),
        "charges": charges,
        "net_credits": sum(line.amount_credits for line in charges),
        "explanation": live.explain(generation),
        "params": _shown_params(generation.params),
    }
    return render(request, "dashboard/request.html", context)


# The request's stored parameters shown, in words (the rest are the API's internals).
_PARAMS = {
    "max_images": "A set of images, at most",
    "layers": "A layer split, layers at most",
    "references": "Reference images",
    "seed": "Seed",
    "guidance_scale": "Guidance scale",
    "output_format": "Output format",
    "output_compression": "Output compression",
    "background": "Background",
    "watermark": "Watermark",
    "user": "End user (the API's user field)",
}


def _shown_params(params: Any) -> list[tuple[str, str]]:
    if not isinstance(params, dict):
        return []
    shown = []
    for key, label in _PARAMS.items():
        value = params.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        shown.append((label, str(value)))
    return shown
