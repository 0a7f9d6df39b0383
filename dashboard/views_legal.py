"""The terms, privacy and acceptable-use pages: text the operator supplies.

Each page renders ``legal/site/<page>.html`` when the operator has written one, and otherwise our
placeholder ``legal/<page>.html``. The override sits in its own folder so an operator's text never
conflicts with an update of ours (README, "Terms, privacy and acceptable use").
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import select_template

PAGES = {
    "terms": "Terms of service",
    "privacy": "Privacy policy",
    "acceptable-use": "Acceptable use policy",
}


def legal_page(request: HttpRequest, page: str) -> HttpResponse:
    name = page.replace("-", "_")
    template = select_template([f"legal/site/{name}.html", f"legal/{name}.html"])
    context = {
        "page_title": PAGES[page],
        "support_email": getattr(settings, "SUPPORT_EMAIL", ""),
        "credits_per_usd": settings.CREDITS_PER_USD,
        "image_retention_days": getattr(settings, "IMAGE_RETENTION_DAYS", 0),
        "site_host": request.get_host(),
    }
    return HttpResponse(template.render(context, request))
