"""The /v1 views' one decorator: the method, the body's size, the caller's key and (for most
endpoints) its rate limits, before the view runs; every error in OpenAI's shape."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import is_ratelimited

from generation import catalog, hotpath
from generation import services as generation
from generation.refusals import Refusal
from keys import controls
from keys import services as keys
from keys.models import ApiKey
from server import body_guard
from server.steps import Steps

from .errors import NO_RETRY, ApiError, error_response, invalid_api_key
from .refusals import api_error


class ApiRequest(HttpRequest):
    """What a /v1 view receives: the authenticated key (its account, credit account and custom
    limits loaded with it), the steps its database work goes through, and the headers every
    answer to it carries once they are known, error or not (x-ratelimit-*; a deprecated model's
    Deprecation, Sunset and Link)."""

    api_key: ApiKey
    steps: Steps
    answer_headers: dict[str, str]


ApiView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def api_endpoint(*methods: str, admit: bool = True) -> Callable[[ApiView], ApiView]:
    """An async /v1 view for ``methods`` (405 for others). Before it runs: a body larger than
    its path allows (server/body_guard.limit_for) is refused (413), then the bearer key is
    authenticated (401) and, with ``admit``, the request is counted against its limits (429).
    ApiError and the domain's Refusal raised anywhere below are rendered in OpenAI's shape,
    with the rate-limit headers."""

    def decorate(view: ApiView) -> ApiView:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return error_response(
                    405,
                    f"{request.method} is not allowed here; use {' or '.join(methods)}.",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join(methods)},
                )
            api_request: ApiRequest = request  # type: ignore[assignment]
            api_request.answer_headers = {}
            api_request.steps = Steps.for_request()
            try:
                _check_body_size(request)
                api_request.api_key = await _authenticate(api_request.steps, request)
                _check_address(api_request.api_key, request)
                if catalog.overrides_due():  # the admin's catalog changes (a query, rarely)
                    await api_request.steps.run(catalog.refresh)
                if admit:
                    key = api_request.api_key
                    admission = await generation.admit(api_request.steps, key.account, key)
                    api_request.answer_headers.update(admission.headers)
                response = await view(api_request, *args, **kwargs)
            except ApiError as exc:
                response = exc.response()
            except Refusal as refusal:
                response = api_error(refusal).response()
            capped: ApiKey | None = getattr(api_request, "api_key", None)
            if capped is not None and capped.spend_cap_credits is not None:
                # Read as the answer leaves: what this request held, charged or gave back.
                api_request.answer_headers.update(
                    await api_request.steps.run(generation.key_budget_headers, capped)
                )
            for name, value in api_request.answer_headers.items():
                response.headers.setdefault(name, value)
            return response

        return wrapper

    return decorate


def _check_address(api_key: ApiKey, request: HttpRequest) -> None:
    """403 ip_not_allowed when the key has an address allowlist the client is outside. The
    address is the one the server saw (behind a proxy, the ASGI server's trusted forwarded
    header sets it: see the README)."""
    address = request.META.get("REMOTE_ADDR")
    if controls.address_allowed(api_key, address):
        return
    raise ApiError(
        403,
        # The allowed networks are not named: whoever holds a leaked key learns nothing of
        # where it would work.
        f"This API key may not be used from {address or 'your address'}: the key is limited to "
        "other addresses. Add this address on the key's page at "
        f"{settings.SITE_URL}{reverse('dashboard:key-spend', args=[api_key.pk])}, or use "
        "another key.",
        type="permission_error",
        code="ip_not_allowed",
        headers=NO_RETRY,
    )


def _check_body_size(request: HttpRequest) -> None:
    limit = body_guard.limit_for(request.path)
    too_large = ApiError(
        413, f"The request body is larger than {limit} bytes.", code="request_too_large"
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    # A chunked body declares no length: it is measured once read (a multipart one is left to
    # its parser, which spools files to disk: reading it whole here would hold it in memory;
    # in a served process the body guard has bounded it already).
    if request.content_type != "multipart/form-data" and len(request.body) > limit:
        raise too_large


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# What ratelimits.limits_for reads, loaded in the key's own query.
_LIMITS_RELATED = ("account__credit_account", "account__rate_limit_override")


async def _authenticate(steps: Steps, request: HttpRequest) -> ApiKey:
    """The ApiKey for the request's bearer token, with its account, credit account and custom
    limits loaded, or ApiError 401 (429 once an address has sent too many wrong keys)."""
    try:
        return await _find_the_key(steps, request)
    except ApiError as refused:
        if await steps.run(_too_many_wrong_keys, request):
            raise ApiError(
                429,
                "Too many requests with a missing or wrong API key from your address: retry "
                "in a minute, with the key from your dashboard.",
                type="rate_limit_error",
                code="too_many_invalid_keys",
                headers={"Retry-After": "60", **NO_RETRY},
            ) from None
        raise refused from None


def _key_failures(group: str, request: HttpRequest) -> str:
    return f"{settings.API_KEY_FAILURES_PER_MINUTE}/m"


def _too_many_wrong_keys(request: HttpRequest) -> bool:
    """Count a refused key against the client's address (in the cache)."""
    return bool(
        is_ratelimited(
            request, group="api-key-failures", key="ip", rate=_key_failures, increment=True
        )
    )


async def _find_the_key(steps: Steps, request: HttpRequest) -> ApiKey:
    raw_key = _bearer_token(request)
    if raw_key is None:
        raise invalid_api_key(
            "You didn't provide an API key. Send it in the Authorization header as "
            f"'Bearer sk-seedream-...'. Create one at {_keys_page()}"
        )

    async def lookup(lookup_id: str) -> ApiKey | None:
        if hotpath.available():
            return await hotpath.find_key(steps, lookup_id)
        return await steps.run(keys.find_key, lookup_id, related=_LIMITS_RELATED)

    try:
        return await keys.aauthenticate(raw_key, lookup=lookup, run_write=steps.run)
    except keys.AuthenticationFailed as exc:
        if exc.reason in ("revoked", "expired", "inactive"):
            raise invalid_api_key(
                f"This API key is {exc.reason}. Create a new one at {_keys_page()}"
            ) from None
        raise invalid_api_key(
            f"Incorrect API key provided: {_redact(raw_key)}. Find your keys at {_keys_page()}"
        ) from None


def _keys_page() -> str:
    """The keys page's full address (SITE_URL, the site's public address): a 401 is read in
    a client's log, where a path alone leads nowhere."""
    return f"{settings.SITE_URL}{reverse('keys:list')}"


def _redact(raw_key: str) -> str:
    if len(raw_key) <= 12:
        return "****"
    return f"{raw_key[:8]}****{raw_key[-4:]}"
