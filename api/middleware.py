"""Request ids: every response, from every path, carries ``x-request-id``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


@sync_and_async_middleware
def request_id_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Native in both modes, so that it costs no thread hop under ASGI."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            request.request_id = new_request_id()  # type: ignore[attr-defined]
            response: HttpResponseBase = await get_response(request)
            response["x-request-id"] = request.request_id  # type: ignore[attr-defined]
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.request_id = new_request_id()  # type: ignore[attr-defined]
        response: HttpResponseBase = get_response(request)
        response["x-request-id"] = request.request_id  # type: ignore[attr-defined]
        return response

    return middleware
