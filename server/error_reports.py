"""Django's debug pages and error reports, with credentials inside URLs hidden too.

Django hides settings whose names look secret (``PASSWORD``, ``KEY``...), but not a password
written inside a URL: ``DATABASE_URL``, ``REDIS_URL``, ``CELERY_BROKER_URL`` and the like would
appear in full on a ``DEBUG=true`` error page. This filter keeps each such URL with its password
replaced.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host... (the user may be empty: redis://:password@host)
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.I
)


def scrub(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}********************", text)


class CredentialsFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return scrub(cleansed)
        return cleansed
