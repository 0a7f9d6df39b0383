"""Deploy checks that see server/web_only.py's middleware for what it is.

Django's security checks find its middleware by dotted path ("django.middleware.security.
SecurityMiddleware" in MIDDLEWARE). Ours runs under other names (``server.web_only.*``), so left
alone `manage.py check --deploy` lies both ways: it warns that the security, CSRF and
X-Frame-Options middleware are missing (security.W001, W002, W003) and skips every check that
only applies when they are there: HSTS (W004, W005, W021), the HTTPS redirect (W008), nosniff
(W006), X-Frame-Options DENY (W019), the referrer and opener policies (W022, E023, E024) and the
secure CSRF cookie (W016).

``browser_middleware`` runs those same functions of Django's with MIDDLEWARE as it would read
with each wrapper replaced by the class it stands for, and reports what they find under
Django's ids. The three "missing" warnings are silenced in settings (SILENCED_SYSTEM_CHECKS) and
reported from here under ids of ours (server.W001-W003) when they are true. ``content_security_
policy`` fails a deploy that would send no Content-Security-Policy.

Registered by ``dashboard``'s AppConfig.ready() (this package is not an app).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.checks.security import base, csrf
from django.utils.module_loading import import_string

Check = Callable[..., Sequence[CheckMessage]]

# Each of Django's deploy checks that reads MIDDLEWARE for the security, CSRF or X-Frame-Options
# middleware. (The session cookie checks read it too, but they also fire on the installed app
# alone, truthfully: security.W010.)
MIDDLEWARE_CHECKS: Sequence[Check] = (
    base.check_security_middleware,
    base.check_xframe_options_middleware,
    csrf.check_csrf_middleware,
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf.check_csrf_cookie_secure,
)
# Django's ids that settings silence, and ours that say the same when it is true.
REPLACED_IDS = {
    "security.W001": "server.W001",
    "security.W002": "server.W002",
    "security.W003": "server.W003",
}
CSP_MIDDLEWARE = "csp.middleware.CSPMiddleware"


def stands_for(path: str) -> str:
    """The dotted path of the middleware that ``path`` runs under another name, else ``path``."""
    try:
        middleware = import_string(path)
    except ImportError:
        return path  # Django's own check of MIDDLEWARE reports it
    return str(getattr(middleware, "stands_for", path))


@contextmanager
def _middleware_read_as(paths: list[str]) -> Iterator[None]:
    # Django's checks read settings.MIDDLEWARE, and nothing else tells them what to look at. This
    # runs in a management command (check --deploy), before and apart from any request.
    saved = settings.MIDDLEWARE
    settings.MIDDLEWARE = paths
    try:
        yield
    finally:
        settings.MIDDLEWARE = saved


def _run(checks: Sequence[Check], **kwargs: Any) -> list[CheckMessage]:
    return [message for check in checks for message in check(**kwargs)]


@register(Tags.security, deploy=True)
def browser_middleware(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    as_named = _run(MIDDLEWARE_CHECKS, app_configs=app_configs, **kwargs)
    with _middleware_read_as([stands_for(path) for path in settings.MIDDLEWARE]):
        as_meant = _run(MIDDLEWARE_CHECKS, app_configs=app_configs, **kwargs)
    # What Django reports by itself (and is not silenced) is not said twice.
    reported = {m.id for m in as_named if m.id not in settings.SILENCED_SYSTEM_CHECKS}
    found: list[CheckMessage] = []
    for message in as_meant:
        if message.id in REPLACED_IDS:
            found.append(CheckWarning(message.msg, hint=message.hint, id=REPLACED_IDS[message.id]))
        elif message.id not in reported:
            found.append(message)
    return found


@register(Tags.security, deploy=True)
def content_security_policy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES")
    if CSP_MIDDLEWARE in map(stands_for, settings.MIDDLEWARE) and directives:
        return []
    return [
        CheckWarning(
            "Pages are sent without a Content-Security-Policy: an injected script would run.",
            hint=f"Keep server.web_only.CSPMiddleware (or {CSP_MIDDLEWARE}) in MIDDLEWARE and "
            "the policy in CONTENT_SECURITY_POLICY (config/settings.py).",
            id="server.W004",
        )
    ]
