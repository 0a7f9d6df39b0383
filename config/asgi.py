"""ASGI entry point: `uvicorn config.asgi:application`.

Django's ASGI handler, with the server's patches (server/asgi.py, listed in server/README.md).
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# What get_asgi_application() does, with the server's handler instead of Django's.
django.setup(set_prefix=False)

from server.asgi import application  # noqa: E402 (the apps first)

__all__ = ["application"]
