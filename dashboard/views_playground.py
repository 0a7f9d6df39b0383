"""The playground: a prompt form with a live price, generations queued to Celery workers, and
cards that follow each generation until it is done (htmx polling; without JavaScript the page
still works by reloading).

Reference images come as files (a multipart POST) or as picks from the customer's gallery
(``?ref=<image token>`` from an image page pre-picks one). The live price counts them: files
cannot travel with the quote's GET, so the page's script counts them and sends ``references``.

Where the model has them, the form makes a set (``make=set``, ``max_images``) or splits its one
reference image into layers (``make=layers``, ``max_layers``); the price is then the set's or
the split's hold, checked and priced by the same domain code as the API's quote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.models import Account
from accounts.permissions import Action
from billing import services as billing
from generation import catalog, services
from generation.models import Generation
from generation.refusals import Reason, Refusal, ShortOfCredits

from . import gallery, live, references
from .forms import (
    CUSTOM,
    IMAGES,
    LAYERS,
    SET,
    PlaygroundForm,
    layer_size_choices,
    make_options,
    normalise_size,
    plain_size_error,
)

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
    # The reference images priced: how many, what they add in all, how many are free, and
    # what each one past those costs per image asked for.
    references: int = 0
    references_credits: int = 0
    free_references: int = 0
    credits_per_reference: int = 0
    # What the images are: ``n`` separate ones, a set of up to ``n``, or a split's base and
    # layers (``n`` in all).
    make: str = IMAGES
    # The size is refused on its field: the price is not shown, and the refusal not repeated.
    unpriced: bool = False

    @property
    def what(self) -> str:
        """The images priced, in words."""
        if self.make == SET:
            return f"a set of up to {self.n} images"
        if self.make == LAYERS:
            layers = f"{self.n - 1} layer{'' if self.n == 2 else 's'}"
            return f"the base and up to {layers} ({self.n} images)"
        return f"{self.n} image{'' if self.n == 1 else 's'}"

    @property
    def total_usd(self) -> str:
        return billing.format_usd_for_people(self.total_credits)

    @property
    def affordable(self) -> bool:
        return self.total_credits <= self.balance_credits

    @property
    def references_text(self) -> str:
        """The reference images' part of the price, in words ("" for none)."""
        if not self.references:
            return ""
        images = f"{self.references} reference image{'' if self.references == 1 else 's'}"
        if not self.references_credits:
            return f"{images}, free"
        paid = self.references - self.free_references
        free = f"{self.free_references} free, " if self.free_references else ""
        return (
            f"{images} ({free}{paid} at {self.credits_per_reference} credits per image asked "
            f"for: {self.references_credits} credits)"
        )


# A set's or a split's price does not depend on its prompt, which may not be written yet (the
# domain asks a set for one): this stands in for it when pricing.
_PRICED_PROMPT = "(the price does not depend on the prompt)"


def _account(request: AuthenticatedRequest) -> Account:
    """The playground spends the current account's credits, for its members who may use it."""
    return require(request, Action.USE_PLAYGROUND)


def quote_for(account: Any, params: Any) -> Quote:
    """The price of what the form says now, from the pricing code the API uses."""
    balance = billing.balance_credits(account)
    model = catalog.get_model(str(params.get("model") or "")) or catalog.text_to_image_models()[0]
    make = str(params.get("make") or IMAGES)
    size = str(params.get("size") or ("auto" if make == LAYERS else model.default_size))
    if size == CUSTOM:
        size = normalise_size(params.get("custom_size"))
        if not size:
            return Quote(balance_credits=balance, error="Enter a size to see the price.")
    try:
        count = _reference_count(model, params.get("references"))
        if make in (SET, LAYERS):
            spec = _set_or_split(model, make, size, count, params)
        else:
            n = min(max(int(params.get("n") or 1), 1), 10)
            resolved = catalog.resolve_size(model, size)
            spec = services.GenerationSpec(model=model, prompt="", size=resolved, n=n)
        priced = services.quote(references.priced_with(spec, count))
        return Quote(
            priced.per_image_credits,
            priced.images,
            priced.tier.name,
            priced.held_credits,
            balance,
            references=count,
            references_credits=priced.references_credits_per_call * priced.calls,
            free_references=min(count, priced.rule.free_references),
            credits_per_reference=priced.rule.reference_credits,
            make=make,
        )
    except catalog.SizeError:
        return Quote(balance_credits=balance, error=plain_size_error(model, size))
    except ValueError:  # a mangled n (the form offers 1 to 4)
        return Quote(balance_credits=balance, error="Choose how many images to see the price.")
    except Refusal as exc:
        if exc.param == "size":
            error = plain_size_error(model, size, split=make == LAYERS)
            return Quote(balance_credits=balance, error=error)
        return Quote(balance_credits=balance, error=exc.message)


def _set_or_split(
    model: catalog.ModelInfo, make: str, size: str, count: int, params: Any
) -> services.GenerationSpec:
    """A set's or a split's spec, through ``build_spec`` as the API's quote builds it: the
    same bounds (a set and its references at most 15, a split of one picture) and the same
    refusals."""
    raw = params.get("max_images" if make == SET else "max_layers")
    try:
        most = int(str(raw)) if str(raw or "").strip() else None  # empty: the domain's default
    except ValueError:
        raise Refusal(
            Reason.INVALID_VALUE,
            f"{'Images in the set' if make == SET else 'Layers'}: enter a whole number.",
        ) from None
    values: dict[str, Any] = {
        "model": model.id,
        "prompt": _PRICED_PROMPT,
        "size": size,
        "reference_count": count,
        "references_param": "reference_files",
    }
    if make == SET:
        values.update(sequential_image_generation="auto", max_images=most)
    else:
        values.update(layer_decomposition=True, max_layers=most)
    return services.build_spec(**values)


def _reference_count(model: catalog.ModelInfo, raw: object) -> int:
    """The references to price: what the page counted, within what the model takes (a price
    for more than it takes would be a price for a request it refuses)."""
    most = model.max_references if references.takes_references(model) else 0
    try:
        return min(max(int(str(raw or 0)), 0), most)
    except ValueError:
        return 0


def _recent(account: Any) -> list[Generation]:
    return list(
        Generation.objects.filter(account=account, source=Generation.Source.PLAYGROUND)
        .prefetch_related("images", "inputs")
        .order_by("-created_at", "-id")[:RECENT]
    )


def _cards(account: Any) -> list[live.Card]:
    """The recent generations' cards, each as it shows after a reload what it showed live (a
    failure's explanation too). Only the newest is drawn large."""
    now = timezone.now()
    return [live.card(g, now, large=not index) for index, g in enumerate(_recent(account))]


def _initial_from(query: Any) -> dict[str, Any]:
    """The form's starting values from the query: the gallery's "use these settings" and "use
    as reference" (``ref``), and the form's own refresh when the model changes."""
    keys = (
        "prompt", "model", "make", "size", "custom_size", "n", "max_images", "max_layers",
        "seed", "guidance_scale", "watermark",
    )  # fmt: skip
    initial: dict[str, Any] = {key: query[key] for key in keys if query.get(key) not in (None, "")}
    if "watermark" in initial:
        initial["watermark"] = initial["watermark"] in ("1", "true", "on")
    picks = [*query.getlist("gallery_references"), *query.getlist("ref")]
    if picks:
        initial["gallery_references"] = list(dict.fromkeys(picks))
    if query.get("references", "").isdigit():
        initial["references"] = int(query["references"])
    model = catalog.get_model(str(initial.get("model", "")))
    size = initial.get("size")
    if model and size:
        _fit_size(initial, model, size)
    return initial


def _fit_size(initial: dict[str, Any], model: catalog.ModelInfo, size: str) -> None:
    """The size the page asked for, in the select of what the form makes: a split's keyword
    (or its default, for a size a split does not take), or an image size (another size
    typed in as a custom one; a split's own keyword left for the model's default)."""
    if initial.get("make") == LAYERS and LAYERS in make_options(model):
        if size not in dict(layer_size_choices(model)):
            del initial["size"]
        return
    if size in _size_values(model) or size == CUSTOM:
        return
    if size in model.layer_keywords:
        del initial["size"]  # the form changed from a split back to images
    else:
        initial["size"], initial["custom_size"] = CUSTOM, size


def _size_values(model: catalog.ModelInfo) -> list[str]:
    return [*model.recommended_sizes, *model.size_keywords]


def _page(
    request: AuthenticatedRequest,
    form: PlaygroundForm,
    status: int = 200,
    *,
    short_of_credits: bool = False,
) -> HttpResponse:
    if form.is_bound:
        params = {key: form.data.get(key) for key in form.data}
    else:
        # What the form shows: the page's values, else each field's default (a set's 4).
        params = {name: form[name].value() for name in form.fields}
        params["model"] = form.model_info.id
    params["references"] = form.reference_count()
    priced = quote_for(_account(request), params)
    if form.has_error("size") or form.has_error("custom_size"):
        # The size's field says what is wrong with it: the price does not say it again.
        priced = replace(priced, error="", unpriced=True)
    template = "dashboard/_form.html" if _is_htmx(request) else "dashboard/playground.html"
    return render(
        request,
        template,
        {
            "form": form,
            "quote": priced,
            "picked": form.picked_tokens(),
            "short_of_credits": short_of_credits,
            "cards": [] if _is_htmx(request) else _cards(_account(request)),
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
        picks = initial.get("gallery_references", [])
        if picks and len(gallery.owned_images(_account(request), picks)) != len(picks):
            raise Http404  # another customer's image, or none: the same answer
        form = PlaygroundForm(
            initial=initial, model_id=initial.get("model"), account=_account(request)
        )
        return _page(request, form)

    form = PlaygroundForm(request.POST, request.FILES, account=_account(request))
    short_of_credits = False
    if form.is_valid():
        try:
            generation = services.submit_generation(
                account=_account(request), user=request.user, spec=form.spec
            )
        except ShortOfCredits as exc:
            form.add_error(None, _short_of_credits(exc))
            short_of_credits = True
        except Refusal as exc:
            form.add_error(None, exc.message)
        else:
            if _is_htmx(request):
                # The new card, and the page's balance with the hold taken (out of band).
                context = {
                    "card": live.card(generation),
                    "show_balance": True,
                    "balance_credits": billing.balance_credits(_account(request)),
                }
                return render(request, "dashboard/_generation.html", context)
            return redirect("dashboard:playground")
    status = 200 if _is_htmx(request) else 400
    response = _page(request, form, status, short_of_credits=short_of_credits)
    if _is_htmx(request):
        # The new card goes into the list; a refused form replaces the form instead.
        response["HX-Retarget"] = "#playground-form"
        response["HX-Reswap"] = "outerHTML"
    return response


def _short_of_credits(exc: ShortOfCredits) -> str:
    if exc.owed_credits:
        return exc.message  # what is owed, and how to pay it
    return (
        f"Not enough credits: this needs {billing.format_credits(exc.needed_credits)} and your "
        f"balance is {billing.format_credits(exc.balance_credits)}. Add credits on the billing "
        "page."
    )


@login_required
@require_GET
def quote(request: AuthenticatedRequest) -> HttpResponse:
    catalog.refresh()
    context = {"quote": quote_for(_account(request), request.GET)}
    return render(request, "dashboard/_quote.html", context)


@login_required
@require_GET
def generation_card(request: AuthenticatedRequest, public_id: str) -> HttpResponse:
    """One generation's card, asked for again every second while it runs."""
    generation = get_object_or_404(Generation, public_id=public_id, account=_account(request))
    context: dict[str, Any] = {"card": live.card(generation)}
    if generation.is_finished:
        # The page's balance follows (an out-of-band swap) once the money is settled.
        context.update(
            show_balance=True, balance_credits=billing.balance_credits(_account(request))
        )
    return render(request, "dashboard/_generation.html", context)
