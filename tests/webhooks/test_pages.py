"""The Webhooks pages under /dashboard/webhooks/: add an endpoint (its secret shown once), bad
URLs refused with clear messages, rotate, disable and enable, test event, resend; CSRF on every
form, and an outsider gets 404 on every page and action."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from webhooks import crypto, events, services
from webhooks.models import Endpoint, Message

ALL_EVENTS = list(events.EVENT_TYPES)
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{44}")


@pytest.fixture
def signed_in(client: Client, owner: Any) -> Client:
    client.force_login(owner)
    return client


def add(client: Client, url: str, event_types: list[str] | None = None, **extra: str) -> Any:
    return client.post(
        "/dashboard/webhooks/",
        {"url": url, "event_types": ALL_EVENTS if event_types is None else event_types, **extra},
    )


@pytest.mark.smoke
def test_adding_an_endpoint_shows_its_secret_once(signed_in: Client, owner: Any) -> None:
    response = add(signed_in, "https://hooks.example.com/seedream", description="prod")
    assert response.status_code == 200
    page = response.content.decode()
    [secret] = set(SECRET.findall(page))
    endpoint = Endpoint.objects.get(account=owner.personal_account)
    assert endpoint.url == "https://hooks.example.com/seedream"
    assert endpoint.event_types == ALL_EVENTS
    assert crypto.decrypt(endpoint.secret_encrypted) == secret
    assert "<strong>it will not be shown again.</strong>" in page
    # Never again: not on the list, not on the endpoint's page.
    for path in ("/dashboard/webhooks/", f"/dashboard/webhooks/{endpoint.pk}/"):
        again = signed_in.get(path)
        assert again.status_code == 200 and "whsec_" not in again.content.decode()
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_page_needs_a_signed_in_customer(client: Client) -> None:
    response = client.get("/dashboard/webhooks/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://hooks.example.com/x", "The endpoint URL must start with https://."),
        ("not a url", "The endpoint URL contains spaces or control characters."),
        ("https://me:pw@hooks.example.com/x", "must not contain a user name or password."),
        ("https://hooks.example.com/x#y", "must not have a #fragment"),
        ("https://" + "a" * 2000 + ".com/", "Ensure this value has at most 2000 characters"),
        ("", "This field is required."),
    ],
)
def test_a_bad_url_is_refused_with_a_form_error(
    signed_in: Client, url: str, error: str, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    response = add(signed_in, url)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://hooks.example.com/x", "The endpoint URL must start with https://."),
        ("https://127.0.0.1:8443/x", "points to a private, loopback, link-local"),
        ("https://192.168.0.10/x", "points to a private, loopback, link-local"),
        ("https://169.254.169.254/latest/meta-data", "points to a private, loopback"),
        ("https://localhost/x", "names a local host, not a public one."),
    ],
)
def test_a_private_address_is_refused_in_production(
    signed_in: Client, production: Any, url: str, error: str
) -> None:
    response = add(signed_in, url)
    assert error in response.content.decode()
    assert not Endpoint.objects.exists()


def test_a_loopback_url_is_allowed_in_the_embedded_default(
    signed_in: Client, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    add(signed_in, "http://127.0.0.1:9000/hooks")
    assert Endpoint.objects.get().url == "http://127.0.0.1:9000/hooks"


@pytest.mark.parametrize(
    ("chosen", "error"),
    [([], "Choose at least one event."), (["invoice.paid"], "Select a valid choice.")],
)
def test_events_must_be_chosen_from_the_list(
    signed_in: Client, chosen: list[str], error: str
) -> None:
    response = add(signed_in, "https://hooks.example.com/x", chosen)
    assert error in response.content.decode()
    assert not Endpoint.objects.exists()


def test_an_account_has_at_most_the_configured_number_of_endpoints(
    signed_in: Client, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ENDPOINTS = 2
    for n in range(3):
        response = add(signed_in, f"https://hooks{n}.example.com/x")
    assert "You have 2 endpoints, the most an account may have." in response.content.decode()
    assert Endpoint.objects.count() == 2


def test_rotating_shows_a_new_secret_once(
    signed_in: Client, owner: Any, endpoint_factory: Callable[..., Any]
) -> None:
    issued = endpoint_factory(owner)
    path = f"/dashboard/webhooks/{issued.endpoint.pk}/rotate"
    confirm = signed_in.get(path)
    assert confirm.status_code == 200 and "Rotate the signing secret?" in confirm.content.decode()
    assert not SECRET.search(confirm.content.decode())
    response = signed_in.post(path)
    [secret] = set(SECRET.findall(response.content.decode()))
    assert secret != issued.secret
    issued.endpoint.refresh_from_db()
    assert services.endpoint_secrets(issued.endpoint) == [secret, issued.secret]


def test_disable_enable_and_edit_events(
    signed_in: Client, owner: Any, endpoint_factory: Callable[..., Any]
) -> None:
    endpoint = endpoint_factory(owner).endpoint
    base = f"/dashboard/webhooks/{endpoint.pk}/"
    assert signed_in.post(base + "disable").status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "owner")
    assert "You disabled this endpoint" in signed_in.get(base).content.decode()
    signed_in.post(base + "enable")
    endpoint.refresh_from_db()
    assert endpoint.enabled
    response = signed_in.post(base, {"event_types": [events.IMAGE_GENERATION_FAILED]})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.event_types == [events.IMAGE_GENERATION_FAILED]
    assert "Choose at least one event." in signed_in.post(base, {}).content.decode()


def test_a_test_event_and_a_resend_are_queued(
    signed_in: Client, owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    endpoint = endpoint_factory(owner).endpoint
    base = f"/dashboard/webhooks/{endpoint.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_in.post(base + "test").status_code == 302
    message = Message.objects.get()
    assert message.event.type == events.WEBHOOK_TEST
    assert sent == [(message.pk, 0)]
    page = signed_in.get(base).content.decode()
    assert message.webhook_id in page and "webhook.test" in page and "Not attempted yet." in page
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"{base}messages/{message.pk}/resend", follow=True)
    assert f"Message {message.webhook_id} is being sent again" in response.content.decode()
    assert sent == [(message.pk, 0), (message.pk, 0)]


def test_an_outsider_gets_404_on_every_page_and_action(
    client: Client, owner: Any, outsider: Any, endpoint_factory: Callable[..., Any],
    sent: list[Any],
) -> None:  # fmt: skip
    endpoint = endpoint_factory(owner).endpoint
    message = services.send_test_event(endpoint)
    base = f"/dashboard/webhooks/{endpoint.pk}/"
    before = Endpoint.objects.values().get(pk=endpoint.pk)
    client.force_login(outsider)
    for path in (base, base + "rotate"):
        assert client.get(path).status_code == 404, path
    for path in (base, base + "rotate", base + "disable", base + "enable", base + "test",
                 f"{base}messages/{message.pk}/resend"):  # fmt: skip
        assert client.post(path, {"event_types": ALL_EVENTS}).status_code == 404, path
    assert Endpoint.objects.values().get(pk=endpoint.pk) == before
    assert Message.objects.count() == 1 and sent == []
    # A message id under one of the outsider's own endpoints is a 404 too.
    own = endpoint_factory(outsider).endpoint
    resend = f"/dashboard/webhooks/{own.pk}/messages/{message.pk}/resend"
    assert client.post(resend).status_code == 404


def test_every_form_needs_its_csrf_token(
    owner: Any, endpoint_factory: Callable[..., Any], sent: list[Any]
) -> None:
    endpoint = endpoint_factory(owner).endpoint
    message = services.send_test_event(endpoint)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    base = f"/dashboard/webhooks/{endpoint.pk}/"
    paths = ["/dashboard/webhooks/", base, base + "rotate", base + "disable", base + "enable",
             base + "test", f"{base}messages/{message.pk}/resend"]  # fmt: skip
    for path in paths:
        assert client.post(path, {"url": "https://x.example.com/"}).status_code == 403, path
    assert Endpoint.objects.count() == 1 and Message.objects.count() == 1


def test_actions_are_posts_only(signed_in: Client, owner: Any, endpoint_factory: Any) -> None:
    endpoint = endpoint_factory(owner).endpoint
    for action in ("disable", "enable", "test"):
        assert signed_in.get(f"/dashboard/webhooks/{endpoint.pk}/{action}").status_code == 405
