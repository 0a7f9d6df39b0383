from __future__ import annotations

from django import template

from generation import services
from generation.models import Image

register = template.Library()


@register.filter
def thumbnail_url(image: Image) -> str:
    return services.thumbnail_url(image)


@register.filter
def image_url(image: Image) -> str:
    return services.image_url(image, "")
