"""The customer's webhook endpoints: add one (its secret shown once), see its deliveries, rotate
its secret, disable or enable it, send a test event, resend a message.

A new or rotated secret is rendered straight into the response to the POST that made it, never
redirected through the session, like a new API key. Every endpoint and message is looked up
with its owner in the query: another customer's is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.current import require
from accounts.http import AuthenticatedRequest
from accounts.permissions import Action

from . import events, services
from .forms import EndpointCreateForm, EndpointEventsForm
from .models import Attempt, Endpoint, Message

RECENT_MESSAGES = 50


def _list_page(
    request: AuthenticatedRequest,
    form: EndpointCreateForm,
    issued: services.IssuedSecret | None = None,
) -> HttpResponse:
    account = require(request, Action.MANAGE_WEBHOOKS)
    endpoints = Endpoint.objects.filter(account=account).order_by("-created_at")
    return render(
        request,
        "webhooks/list.html",
        {
            "endpoints": endpoints,
            "form": form,
            "issued": issued,
            "event_types": events.EVENT_TYPES,
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def endpoint_list(request: AuthenticatedRequest) -> HttpResponse:
    account = require(request, Action.MANAGE_WEBHOOKS)
    if request.method != "POST":
        return _list_page(request, EndpointCreateForm())
    form = EndpointCreateForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form)
    try:
        issued = services.create_endpoint(
            account,
            form.cleaned_data["url"],
            form.cleaned_data["event_types"],
            form.cleaned_data["description"],
        )
    except services.Refusal as refusal:
        form.add_error(None, refusal.message)
        return _list_page(request, form)
    return _list_page(request, EndpointCreateForm(), issued)


def _owned(request: AuthenticatedRequest, endpoint_id: int) -> Endpoint:
    account = require(request, Action.MANAGE_WEBHOOKS)
    return get_object_or_404(Endpoint, pk=endpoint_id, account=account)


def _detail_page(
    request: AuthenticatedRequest,
    endpoint: Endpoint,
    *,
    events_form: EndpointEventsForm | None = None,
    issued: services.IssuedSecret | None = None,
) -> HttpResponse:
    recent = (
        Message.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_log", queryset=Attempt.objects.order_by("number")))
        .order_by("-created_at", "-pk")[:RECENT_MESSAGES]
    )
    return render(
        request,
        "webhooks/detail.html",
        {
            "endpoint": endpoint,
            "recent": recent,
            "issued": issued,
            "events_form": events_form
            or EndpointEventsForm(initial={"event_types": endpoint.event_types}),
            "recent_limit": RECENT_MESSAGES,
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def endpoint_detail(request: AuthenticatedRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    if request.method != "POST":
        return _detail_page(request, endpoint)
    form = EndpointEventsForm(request.POST)
    if not form.is_valid():
        return _detail_page(request, endpoint, events_form=form)
    services.update_event_types(endpoint, form.cleaned_data["event_types"])
    messages.success(request, "The endpoint's events are saved.")
    return redirect("webhooks:detail", endpoint.pk)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def rotate(request: AuthenticatedRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    if request.method != "POST":
        return render(request, "webhooks/rotate.html", {"endpoint": endpoint})
    issued = services.rotate_secret(endpoint)
    return _detail_page(request, issued.endpoint, issued=issued)


@login_required
@require_POST
def disable(request: AuthenticatedRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    services.disable_endpoint(endpoint)
    messages.success(request, "The endpoint is disabled: no events are sent to it.")
    return redirect("webhooks:detail", endpoint.pk)


@login_required
@require_POST
def enable(request: AuthenticatedRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    services.enable_endpoint(endpoint)
    messages.success(
        request, "The endpoint is enabled. Resend any message it missed from the list below."
    )
    return redirect("webhooks:detail", endpoint.pk)


@login_required
@require_POST
def send_test(request: AuthenticatedRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    try:
        services.send_test_event(endpoint)
    except services.Refusal as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, "A test event is on its way. Reload to see how it went.")
    return redirect("webhooks:detail", endpoint.pk)


@login_required
@require_POST
def resend(request: AuthenticatedRequest, endpoint_id: int, message_id: int) -> HttpResponse:
    endpoint = _owned(request, endpoint_id)
    message = get_object_or_404(Message, pk=message_id, endpoint=endpoint)
    try:
        services.resend(message)
    except services.Refusal as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(
            request, f"Message {message.webhook_id} is being sent again, with the same webhook-id."
        )
    return redirect("webhooks:detail", endpoint.pk)
