"""What every page's footer needs, on pages whose views know nothing of it (allauth's too)."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def support_email() -> str:
    """The address customers write to (SUPPORT_EMAIL), or "" when the operator set none."""
    return str(getattr(settings, "SUPPORT_EMAIL", "") or "")
