"""Every page carries the Content-Security-Policy (django-csp, run by server/web_only.py for
browser paths only): scripts, styles and the rest from this site only, nothing inline."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.smoke

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'", "https://checkout.stripe.com"],
}


def policy_of(response: Any) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: [sources]} (order is not kept)."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


PUBLIC_PAGES = ["/", "/docs/", "/accounts/login/", "/accounts/signup/"]
CUSTOMER_PAGES = [
    "/dashboard/",
    "/dashboard/usage/",
    "/dashboard/keys/",
    "/dashboard/playground/",
    "/dashboard/gallery/",
    "/dashboard/billing/",
    "/dashboard/limits/",
    "/dashboard/account/",
    "/accounts/2fa/",
]
STAFF_PAGES = ["/admin/", "/admin/billing/creditaccount/"]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_the_public_pages_send_the_policy(client: Client, db: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert policy_of(response) == POLICY


@pytest.mark.parametrize("path", CUSTOMER_PAGES)
def test_the_dashboard_pages_send_the_policy(client: Client, owner: Any, path: str) -> None:
    client.force_login(owner)
    response = client.get(path)
    assert response.status_code == 200
    assert policy_of(response) == POLICY


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_the_admin_sends_the_policy(client: Client, user_factory: Any, path: str) -> None:
    client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    response = client.get(path)
    assert response.status_code == 200
    assert policy_of(response) == POLICY


def test_errors_and_redirects_of_pages_send_it_too(client: Client, db: None) -> None:
    assert policy_of(client.get("/no-such-page/")) == POLICY
    assert policy_of(client.get("/dashboard/")) == POLICY  # 302 to sign in


@pytest.mark.parametrize("path", ["/v1/models", "/healthz", "/img/t/nosuchtoken.webp"])
def test_the_api_and_the_hosted_images_skip_it(client: Client, db: None, path: str) -> None:
    # Never rendered as a document, and served without the browser middleware's thread hops.
    assert "Content-Security-Policy" not in client.get(path).headers
