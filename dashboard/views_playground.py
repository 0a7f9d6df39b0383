"""The playground: a prompt form with a live price, generations queued to Celery workers, and
cards that follow each generation until it is done (htmx polling; without JavaScript the page
still works by reloading)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthenticatedRequest
from billing import services as billing
from generation import catalog, services
from generation.models import Generation
from generation.refusals import Refusal, ShortOfCredits

from . import live
from .forms import CUSTOM, PlaygroundForm, normalise_size

RECENT = 12


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


@dataclass(frozen=True)
class Quote:
    """billing's quote for the form's choice, with the balance it is compared with."""

    credits_per_image: int = 0
    n: int = 0
    tier: str = ""
    total_credits: int = 0
    balance_credits: int = 0
    error: str = ""

    @property
    def total_usd(self) -> str:
        return billing.format_usd(self.total_credits)

    @property
    def affordable(self) -> bool:
        return self.total_credits <= self.balance_credits


def quote_for(user: Any, params: Any) -> Quote:
    """The price of what the form says now, from the pricing code the API uses."""
    balance = billing.balance_credits(user)
    model = catalog.get_model(str(params.get("model") or "")) or catalog.text_to_image_models()[0]
    size = str(params.get("size") or model.default_size)
    if size == CUSTOM:
        size = normalise_size(params.get("custom_size"))
        if not size:
            return Quote(balance_credits=balance, error="Enter a size to see the price.")
    try:
        n = min(max(int(params.get("n") or 1), 1), 10)
        resolved = catalog.resolve_size(model, size)
        spec = services.GenerationSpec(model=model, prompt="", size=resolved, n=n)
        priced = services.quote(spec)
        return Quote(priced.per_image_credits, n, priced.tier.name, priced.held_credits, balance)
    except ValueError as exc:  # SizeError or a mangled n
        return Quote(balance_credits=balance, error=f"{size}: {exc}.")
    except Refusal as exc:
        return Quote(balance_credits=balance, error=exc.message)


def _recent(user: Any) -> list[Generation]:
    return list(
        Generation.objects.filter(user=user, source=Generation.Source.PLAYGROUND)
        .prefetch_related("images")
        .order_by("-created_at", "-id")[:RECENT]
    )


def _initial_from(query: Any) -> dict[str, Any]:
    """The form's starting values from the query: the gallery's "use these settings"."""
    keys = ("prompt", "model", "size", "custom_size", "n", "seed", "guidance_scale", "watermark")
    initial = {key: query[key] for key in keys if query.get(key) not in (None, "")}
    if "watermark" in initial:
        initial["watermark"] = initial["watermark"] in ("1", "true", "on")
    model = catalog.get_model(str(initial.get("model", "")))
    size = initial.get("size")
    if model and size and size not in dict(_size_values(model)):
        initial["size"], initial["custom_size"] = CUSTOM, size
    return initial


def _size_values(model: catalog.ModelInfo) -> list[tuple[str, str]]:
    return [(s, s) for s in [*model.recommended_sizes, *model.size_keywords]]


def _page(request: AuthenticatedRequest, form: PlaygroundForm, status: int = 200) -> HttpResponse:
    params = form.data if form.is_bound else {**form.initial, **{"model": form.model_info.id}}
    template = "dashboard/_form.html" if _is_htmx(request) else "dashboard/playground.html"
    return render(
        request,
        template,
        {
            "form": form,
            "quote": quote_for(request.user, params),
            "generations": [] if _is_htmx(request) else _recent(request.user),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def playground(request: AuthenticatedRequest) -> HttpResponse:
    catalog.refresh()
    if request.method == "GET":
        # Also answers the form's own refresh when the model changes (htmx asks for the form).
        initial = _initial_from(request.GET)
        return _page(request, PlaygroundForm(initial=initial, model_id=initial.get("model")))

    form = PlaygroundForm(request.POST)
    if form.is_valid():
        try:
            generation = services.submit_generation(user=request.user, spec=form.spec)
        except ShortOfCredits as exc:
            form.add_error(None, _short_of_credits(exc))
        except Refusal as exc:
            form.add_error(None, exc.message)
        else:
            if _is_htmx(request):
                return render(request, "dashboard/_generation.html", _card(generation, new=True))
            return redirect("dashboard:playground")
    response = _page(request, form, status=200 if _is_htmx(request) else 400)
    if _is_htmx(request):
        # The new card goes into the list; a refused form replaces the form instead.
        response["HX-Retarget"] = "#playground-form"
        response["HX-Reswap"] = "outerHTML"
    return response


def _short_of_credits(exc: ShortOfCredits) -> str:
    if exc.owed_credits:
        return exc.message  # what is owed, and how to pay it
    return (
        f"Not enough credits: this needs {exc.needed_credits} and your balance is "
        f"{exc.balance_credits}. Add credits on the billing page."
    )


@login_required
@require_GET
def quote(request: AuthenticatedRequest) -> HttpResponse:
    catalog.refresh()
    context = {"quote": quote_for(request.user, request.GET)}
    return render(request, "dashboard/_quote.html", context)


def _card(generation: Generation, *, new: bool = False) -> dict[str, Any]:
    return {
        "g": generation,
        "images": list(generation.images.all()),
        "explanation": live.explain(generation),
        "progress": live.progress_label(generation),
        "new": new,
    }


@login_required
@require_GET
def generation_card(request: AuthenticatedRequest, public_id: str) -> HttpResponse:
    """One generation's card, asked for again every second while it runs."""
    generation = get_object_or_404(Generation, public_id=public_id, user=request.user)
    context = _card(generation)
    if generation.is_finished:
        # The page's balance follows (an out-of-band swap) once the money is settled.
        context.update(show_balance=True, balance_credits=billing.balance_credits(request.user))
    return render(request, "dashboard/_generation.html", context)
