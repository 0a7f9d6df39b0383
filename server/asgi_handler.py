"""Django's ASGI handler, without its two thread hops where they would have nothing to do.

For every request Django's handler sends ``request_started`` to its synchronous receivers on the
request's thread, and closes the response (which sends ``request_finished``) on that thread.
Their receivers close the database connections the request opened there (Django keeps them per
thread) and the cache clients it opened (per request context). A request that never used its
thread, such as an API generation served on the event loop (server/asyncdb.py), opened no
connection there: the two hops moved nothing but the request itself, twice, between threads
(with the loop's pool, this took 5.01 to 3.46 ms per request at 16 connections: bench/README.md,
step 8; server/README.md lists what this touches).

``handle`` below is Django 5.2's, except that each of those two steps runs on the event loop
when it has nothing to close: only Django's own receivers are connected, the request's thread
(a ``RequestThread`` that server/asgi.py lends it) ran nothing, it opened no cache client,
neither the response nor an upload holds a file, and (for the start) connections do not
outlive their requests. Otherwise, and for a request served without a
``RequestThread``, they hop as in Django.

Each line of ``handle`` that differs from Django's ends in ``# changed: <why>``, and the Django
lines it stands for are kept just above it as ``# django: <line>`` comments, at their own
indentation. tests/server/test_asgi_handler.py rebuilds Django's source from this copy by those
two marks and compares it with the installed Django's, line for line: an unmarked difference,
or a Django upgrade that changed ``handle``, fails it with the diff.
"""

# ruff: noqa: SIM105 (handle() is kept line for line as Django wrote it, to diff it on upgrades)

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix

# The receivers Django itself connects; with another one, the steps go on a thread as Django's.
_STARTED_RECEIVERS = {reset_queries, close_old_connections}
_FINISHED_RECEIVERS = {close_old_connections, close_caches, reset_urlconf}


def _receivers(signal: Any, sender: type) -> set[Any]:
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return {*sync_receivers, *async_receivers}


# Where server/asgi.py puts the request's thread in the ASGI scope.
REQUEST_THREAD = "seedream.request_thread"


class RequestThread(ThreadPoolExecutor):
    """The single thread a request's synchronous steps run on, and whether any ran yet."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self.used = False

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.used = True
        return super().submit(*args, **kwargs)


def _thread_unused(scope: Any) -> bool:
    thread = scope.get(REQUEST_THREAD)
    return isinstance(thread, RequestThread) and not thread.used


def _connections_end_with_requests() -> bool:
    """Whether every connection is given back when its request ends (the pool; CONN_MAX_AGE 0).
    A persistent one (DB_POOL=false) stays with its thread between requests, and Django checks
    it there when the next request starts (its age, its health): that start is not skipped."""
    return all(not db.get("CONN_MAX_AGE") for db in settings.DATABASES.values())


def _closes_nothing(closer: Any) -> bool:
    """Whether a response's resource closer has nothing to close: the request's own, when no
    file was uploaded with it (Django adds it to every response). A file's is something."""
    request = getattr(closer, "__self__", None)
    return isinstance(request, HttpRequest) and not getattr(request, "_files", None)


class Handler(ASGIHandler):
    # django: async def handle(self, scope, receive, send):
    async def handle(self, scope: Any, receive: Any, send: Any) -> None:  # changed: typed
        # django: """
        # django: Handles the ASGI request. Called via the __call__ method.
        # django: """
        """Handles the ASGI request. Called via the __call__ method."""  # changed: ruff's style
        # Receive the HTTP request body as a stream object.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # Request is complete and can be served.
        set_script_prefix(get_script_prefix(scope))
        # django: await signals.request_started.asend(sender=self.__class__, scope=scope)
        await self._request_started(scope)  # changed: on the loop when there is nothing to do
        # Get the request and check for basic issues.
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # changed: for mypy (Django returns one or other)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        # django: async def process_request(request, send):
        async def process_request(request: Any, send: Any) -> Any:  # changed: typed
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                # Client disconnected during send_response (ignore exception).
                pass

            return response

        # Try to catch a disconnect while getting response.
        tasks = [
            # Check the status of these tasks and (optionally) terminate them
            # in this order. The listen_for_disconnect() task goes first
            # because it should not raise unexpected errors that would prevent
            # us from cancelling process_request().
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # Now wait on both tasks (they may have both finished by now).
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    # Ignore client disconnects.
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                # Allow views to handle cancellation.
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    # Task re-raised the CancelledError as expected.
                    pass

        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            # django: await sync_to_async(response.close)()
            await self._close(response, scope)  # changed: on the loop when there is nothing to do

        body_file.close()

    async def _request_started(self, scope: Any) -> None:
        receivers = _receivers(signals.request_started, self.__class__)
        if (
            receivers <= _STARTED_RECEIVERS
            and _thread_unused(scope)
            and _connections_end_with_requests()
        ):
            # On the loop thread: it holds no connection, as the request's thread holds none
            # (its previous request closed what it opened); reset_queries empties DEBUG's logs.
            signals.request_started.send(sender=self.__class__, scope=scope)
        else:
            await signals.request_started.asend(sender=self.__class__, scope=scope)

    async def _close(self, response: HttpResponseBase, scope: Any) -> None:
        on_loop = (
            _thread_unused(scope)
            and all(map(_closes_nothing, response._resource_closers))  # type: ignore[attr-defined]
            and _receivers(signals.request_finished, self.__class__) <= _FINISHED_RECEIVERS
            and not caches.all(initialized_only=True)
        )
        if on_loop:
            response.close()
        else:
            await sync_to_async(response.close)()
