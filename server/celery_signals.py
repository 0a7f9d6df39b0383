"""Celery signal receivers: the request id travels with each task, and task outcomes are counted.

A task sent while a request is served carries that request's id in a message header
(``x_request_id``); the worker puts it back in ``server.middleware.request_id_var`` while the task
runs, so the task's log lines carry the id of the request that queued it. A task run eagerly (in
the caller's process) keeps the caller's id as it is.
"""

from __future__ import annotations

import logging
from contextvars import Token
from typing import Any

from celery import signals
from celery.utils.log import get_multiprocessing_logger
from django.conf import settings
from django.utils.module_loading import import_string

from server import metrics
from server.middleware import RequestIdFilter, request_id_var

HEADER = "x_request_id"

# The context token of each running task, to restore the worker's context when it ends.
_tokens: dict[str, Token[str | None]] = {}


@signals.before_task_publish.connect(weak=False)
def add_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(HEADER, request_id)


def _header(task: Any) -> str | None:
    request = task.request
    # A worker puts custom message headers on the request itself; Task.apply(headers=...)
    # keeps them apart.
    value = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER)
    return value if isinstance(value, str) else None


@signals.task_prerun.connect(weak=False)
def restore_request_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    # In a worker nothing else sets the id: a task sent outside any request has none.
    _tokens[task_id] = request_id_var.set(_header(task) or request_id_var.get())


@signals.task_postrun.connect(weak=False)
def clear_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:
            request_id_var.set(None)  # set in another context (a thread pool's other thread)


@signals.task_success.connect(weak=False)
def count_success(sender: Any = None, **_: Any) -> None:
    metrics.task_finished(getattr(sender, "name", ""), "succeeded")


@signals.task_failure.connect(weak=False)
def count_failure(sender: Any = None, **_: Any) -> None:
    metrics.task_finished(getattr(sender, "name", ""), "failed")


@signals.task_retry.connect(weak=False)
def count_retry(sender: Any = None, **_: Any) -> None:
    metrics.task_finished(getattr(sender, "name", ""), "retried")


@signals.after_setup_logger.connect(weak=False)
@signals.after_setup_task_logger.connect(weak=False)
def format_worker_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """Celery replaces the root logger's handlers with its own (and gives task loggers theirs).
    In json mode those handlers print the same JSON lines, with the request id, as the web
    processes; in plain mode Celery's own format stays."""
    if logger is None:
        return
    id_filter = RequestIdFilter()
    formatter = _json_formatter() if settings.LOG_FORMAT == "json" else None
    # The pool's own logger (worker processes exiting, ...) was given a handler of its own.
    for handler in [*logger.handlers, *get_multiprocessing_logger().handlers]:
        handler.addFilter(id_filter)
        if formatter is not None:
            handler.setFormatter(formatter)


def _json_formatter() -> logging.Formatter:
    spec = dict(settings.LOGGING["formatters"]["json"])
    factory = import_string(spec.pop("()"))
    formatter: logging.Formatter = factory(**spec)
    return formatter
