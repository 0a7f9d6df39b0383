"""`manage.py check --deploy` tells the truth about the browser middleware that runs under
server.web_only's names: no false "middleware missing" warnings, and the real ones (HSTS, the
HTTPS redirect, secure cookies, the Content-Security-Policy) reported when they are true."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from server.checks import browser_middleware, content_security_policy, stands_for
from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.smoke

SECURITY_IDS = re.compile(r"\(((?:security|server|csp)\.[WE]\d{3})\)")


def check_deploy(tmp_path, **env: str) -> set[str]:
    """The security ids `manage.py check --deploy` prints for a production-like environment
    (https, DEBUG off, a mail server and an upstream key) with ``env`` on top."""
    production = {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
        "DEBUG": "false",
        "SITE_URL": "https://seedream.example.com",
        "ALLOWED_HOSTS": "seedream.example.com",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "EMAIL_HOST": "smtp.example.com",
        "UPSTREAM_API_KEY": "ark-key",
    }
    run = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT_ROOT, env=production | env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return set(SECURITY_IDS.findall(run.stdout + run.stderr))


def test_https_production_defaults_leave_only_the_two_hsts_choices_to_make(tmp_path):
    # Redirect, HSTS, secure cookies and the CSP are on; HSTS for subdomains and the preload
    # list stay the operator's decision, and the check says so.
    assert check_deploy(tmp_path) == {"security.W005", "security.W021"}


def test_a_secure_configuration_reports_no_security_warning(tmp_path):
    assert (
        check_deploy(tmp_path, SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true")
        == set()
    )


def test_an_insecure_configuration_reports_hsts_the_redirect_and_the_cookies(tmp_path):
    found = check_deploy(
        tmp_path, SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0", SECURE_COOKIES="false"
    )
    assert found == {"security.W004", "security.W008", "security.W010", "security.W016"}


def test_every_wrapper_stands_for_the_class_it_wraps(settings):
    assert [stands_for(path) for path in settings.MIDDLEWARE if "web_only" in path] == [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "csp.middleware.CSPMiddleware",
    ]


def test_the_checks_depending_on_the_wrapped_middleware_run(settings):
    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_COOKIE_SECURE = False
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"

    assert sorted(m.id for m in browser_middleware(None)) == [
        "security.W004",
        "security.W008",
        "security.W016",
        "security.W019",
    ]


def test_a_missing_middleware_is_still_reported_under_our_id(settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_SSL_REDIRECT = settings.CSRF_COOKIE_SECURE = True
    settings.MIDDLEWARE = [
        path for path in settings.MIDDLEWARE if not path.endswith("XFrameOptionsMiddleware")
    ]
    assert [m.id for m in browser_middleware(None)] == ["server.W002"]

    # Django's own classes, named as Django names them: Django's checks speak for themselves.
    settings.MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
    settings.SECURE_SSL_REDIRECT = False
    assert sorted(m.id for m in browser_middleware(None)) == ["server.W002", "server.W003"]


def test_a_deploy_without_a_content_security_policy_is_reported(settings):
    assert content_security_policy(None) == []

    settings.MIDDLEWARE = [p for p in settings.MIDDLEWARE if not p.endswith("CSPMiddleware")]
    assert [m.id for m in content_security_policy(None)] == ["server.W004"]
