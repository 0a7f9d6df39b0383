"""404 and 500 pages in the site's layout for browser paths; /v1 keeps its JSON errors."""

from __future__ import annotations

import pytest
from django.test import Client

from dashboard import errors

BRAND = '<a class="brand" href="/">Seedream API</a>'


@pytest.fixture
def failing_site(settings):
    settings.ROOT_URLCONF = "tests.support.failing_urls"
    settings.DEBUG = False
    return Client(raise_request_exception=False)


def test_a_missing_page_is_ours_with_the_way_back(client, db, settings):
    settings.SUPPORT_EMAIL = "help@operator.example"
    response = client.get("/no/such/<page>/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert BRAND in page
    assert "<title>Page not found · Seedream API</title>" in page
    assert '<h1 id="error-title">Page not found</h1>' in page
    assert "/no/such/%3Cpage%3E/" in page  # the path, quoted
    assert "<page>" not in page
    assert 'href="/">Go to the home page</a>' in page
    assert 'href="mailto:help@operator.example"' in page


def test_a_signed_in_customer_is_offered_the_dashboard(client, owner):
    client.force_login(owner)
    page = client.get("/dashboard/nothing-here/").content.decode()
    assert 'href="/dashboard/">Go to your dashboard</a>' in page
    assert "Sign out" in page


def test_an_unknown_api_path_still_answers_json(client, db):
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_a_failing_page_gets_our_500_page(failing_site, settings):
    settings.SUPPORT_EMAIL = "help@operator.example"
    response = failing_site.get("/dashboard/explode/")

    assert response.status_code == 500
    page = response.content.decode()
    assert BRAND in page
    assert "<title>Something went wrong · Seedream API</title>" in page
    assert "not charged" in page
    assert 'href="mailto:help@operator.example"' in page
    assert "deliberate failure" not in page


def test_a_failing_api_call_still_answers_json(failing_site):
    response = failing_site.get("/v1/explode")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


def test_without_a_support_address_the_500_page_names_the_operator(failing_site, settings):
    settings.SUPPORT_EMAIL = ""
    page = failing_site.get("/dashboard/explode/").content.decode()
    assert "tell the operator of this installation" in page


def test_a_500_page_that_cannot_be_drawn_falls_back_to_plain_words(
    failing_site, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("template trouble")

    monkeypatch.setattr(errors, "render_to_string", broken)
    response = failing_site.get("/dashboard/explode/")
    assert response.status_code == 500
    assert response.content.decode() == errors.BARE_500
    assert "The 500 page could not be drawn" in caplog.text
