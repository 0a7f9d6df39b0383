"""The browser middleware, skipped on the API's paths.

Under ASGI every classic middleware runs its hooks through sync_to_async: a thread hop each
(measured on a bare view, about 1.5 ms per request for Django's stock list; no figure for this
code, see server/README.md).
The /v1 API and the hosted images use no session, CSRF, messages or user, so requests to them
go straight past these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from csp import middleware as csp
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest
from django.middleware import clickjacking, common, csrf, security
from django.utils.deprecation import MiddlewareMixin
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoise

# Paths served by the API stack: no cookies are read or set there. The health checks and the
# metrics scrape are polled every few seconds and need none of the browser middleware either.
API_PATH_PREFIXES = ("/v1/", "/img/", "/healthz", "/readyz", "/metrics")


def _dotted_path(middleware_class: type) -> str:
    return f"{middleware_class.__module__}.{middleware_class.__qualname__}"


def _web_only(middleware_class: type[MiddlewareMixin]) -> type[MiddlewareMixin]:
    """A subclass that passes API paths straight on. Code that tests for the class (the admin's
    checks) still recognises it; Django's security checks, which look for its dotted path in
    MIDDLEWARE, are told what it stands for by server/checks.py (through ``stands_for``)."""

    class WebOnly(middleware_class):  # type: ignore[misc,valid-type]
        stands_for = _dotted_path(middleware_class)

        def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
            super().__init__(get_response)
            if hasattr(self, "process_view") and iscoroutinefunction(get_response):
                # Django calls a middleware's sync process_view (CSRF's) through a thread hop on
                # every request; an async one it awaits, and API paths skip it here.
                self.process_view = self._process_view_async

        async def _process_view_async(self, request: HttpRequest, *args: Any) -> Any:
            if request.path.startswith(API_PATH_PREFIXES):
                return None
            return await sync_to_async(super().process_view)(request, *args)

        def __call__(self, request: HttpRequest) -> Any:
            if request.path.startswith(API_PATH_PREFIXES):
                return self.get_response(request)
            return super().__call__(request)

    WebOnly.__name__ = WebOnly.__qualname__ = middleware_class.__name__
    return WebOnly


class WhiteNoiseMiddleware:
    """WhiteNoise is sync-only, so in an async stack Django would hop threads for it on every
    request; here only browser paths pay that hop."""

    async_capable = True
    sync_capable = True
    stands_for = _dotted_path(_WhiteNoise)

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)
            self.inner: Callable[[HttpRequest], Any] = sync_to_async(
                _WhiteNoise(async_to_sync(get_response))
            )
        else:
            self.inner = _WhiteNoise(get_response)

    def __call__(self, request: HttpRequest) -> Any:
        if request.path.startswith(API_PATH_PREFIXES):
            return self.get_response(request)
        return self.inner(request)


SecurityMiddleware = _web_only(security.SecurityMiddleware)
SessionMiddleware = _web_only(sessions.SessionMiddleware)
CommonMiddleware = _web_only(common.CommonMiddleware)
CsrfViewMiddleware = _web_only(csrf.CsrfViewMiddleware)
AuthenticationMiddleware = _web_only(auth.AuthenticationMiddleware)
MessageMiddleware = _web_only(messages.MessageMiddleware)
XFrameOptionsMiddleware = _web_only(clickjacking.XFrameOptionsMiddleware)
# django-csp's: the Content-Security-Policy header (CONTENT_SECURITY_POLICY in config/settings.py)
# on every page. The API's JSON and the hosted images are never rendered as documents.
CSPMiddleware = _web_only(csp.CSPMiddleware)
