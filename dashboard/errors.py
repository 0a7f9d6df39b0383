"""The browser's error pages. /v1 keeps its OpenAI-shaped JSON errors (api.views); config/urls.py
sends every other path here."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# What a browser gets if even our 500 page cannot be drawn.
BARE_500 = (
    "<!doctype html><title>Server error</title><h1>Something went wrong on our side</h1>"
    "<p>Try again in a moment.</p>"
)


def server_error(request: HttpRequest) -> HttpResponse:
    """Our 500 page, in the site's layout. Drawn without the request (as Django's own is): the
    failure may be the database's or the session's, and a page that reads the signed-in user
    would fail the same way. So it names nobody and offers the way back and whom to write to."""
    body: str
    try:
        body = render_to_string("500.html", {"support_email": settings.SUPPORT_EMAIL})
    except Exception:
        logger.exception("The 500 page could not be drawn")
        body = BARE_500
    return HttpResponseServerError(body)
