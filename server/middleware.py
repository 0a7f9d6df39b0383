"""Request ids and request metrics, on every path.

Every response carries ``x-request-id``; while the request is served its id is in
``request_id_var``, which ``RequestIdFilter`` puts on every log record (and server/celery_signals.py
hands on to the Celery tasks the request queues). Both middlewares are native in both modes, so
under ASGI they cost no thread hop.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from . import metrics

# The id of the request being served, or of the request that queued the Celery task being run.
# Tasks and threads started while serving a request copy the context, so they carry it too.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request or task) to each record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


@sync_and_async_middleware
def request_id_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Native in both modes, so that it costs no thread hop under ASGI."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            request.request_id = request_id = new_request_id()  # type: ignore[attr-defined]
            token = request_id_var.set(request_id)
            try:
                response: HttpResponseBase = await get_response(request)
            finally:
                request_id_var.reset(token)
            response["x-request-id"] = request_id
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.request_id = request_id = new_request_id()  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response: HttpResponseBase = get_response(request)
        finally:
            request_id_var.reset(token)
        response["x-request-id"] = request_id
        return response

    return middleware


@sync_and_async_middleware
def metrics_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Counts and times each request by its route (the URL pattern's name) and status."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            response: HttpResponseBase = await get_response(request)
            metrics.observe_request(request, response.status_code, time.perf_counter() - started)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response: HttpResponseBase = get_response(request)
        metrics.observe_request(request, response.status_code, time.perf_counter() - started)
        return response

    return middleware
