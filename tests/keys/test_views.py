"""The API keys pages: the owner manages their keys; an outsider gets 404; visitors log in."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from keys import services
from keys.models import ApiKey

KEY_RE = re.compile(r"sk-seedream-[0-9a-f]{16}_[A-Za-z0-9]{43}")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def test_a_visitor_is_sent_to_log_in(client, owner, api_key_factory):
    key = api_key_factory(owner).api_key
    for url in [
        "/dashboard/keys/",
        f"/dashboard/keys/{key.pk}/rotate",
        f"/dashboard/keys/{key.pk}/revoke",
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_the_owner_creates_a_key_and_sees_it_exactly_once(owner_client, owner):
    response = owner_client.post("/dashboard/keys/", {"name": "  laptop  ", "expires_on": ""})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = KEY_RE.search(response.content.decode()).group(0)
    api_key = services.authenticate(raw)
    assert (api_key.user, api_key.name) == (owner, "laptop")
    listing = owner_client.get("/dashboard/keys/").content.decode()
    assert raw not in listing
    assert api_key.prefix in listing
    assert not KEY_RE.search(listing)


def test_a_key_can_be_given_an_expiry(owner_client, owner):
    day = timezone.now().date() + datetime.timedelta(days=30)
    owner_client.post("/dashboard/keys/", {"name": "ci", "expires_on": day.isoformat()})
    key = ApiKey.objects.get(user=owner)
    assert key.expires_at == datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "   "}, "This field is required."),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"name": "ci", "expires_on": "2001-01-01"}, "The expiry must be a future date."),
        ({"name": "ci", "expires_on": "tomorrow"}, "Enter a valid date."),
    ],
)
def test_a_bad_key_form_explains_itself_and_creates_nothing(owner_client, owner, data, message):
    response = owner_client.post("/dashboard/keys/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ApiKey.objects.filter(user=owner).exists()


def test_the_list_shows_only_the_owners_keys(owner_client, owner, outsider, api_key_factory):
    mine = api_key_factory(owner, "mine").api_key
    theirs = api_key_factory(outsider, "theirs").api_key
    page = owner_client.get("/dashboard/keys/").content.decode()
    assert mine.prefix in page
    assert theirs.prefix not in page


@pytest.mark.parametrize("action", ["rotate", "revoke"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_outsider_gets_404_for_someone_elses_key(
    client, owner, outsider, api_key_factory, action, method
):
    issued = api_key_factory(owner)
    client.force_login(outsider)
    response = getattr(client, method)(f"/dashboard/keys/{issued.api_key.pk}/{action}")
    assert response.status_code == 404
    assert services.authenticate(issued.raw_key).pk == issued.api_key.pk


def test_revoking_asks_first_then_the_key_fails_at_once(owner_client, owner, api_key_factory):
    issued = api_key_factory(owner, "server")
    url = f"/dashboard/keys/{issued.api_key.pk}/revoke"

    confirm = owner_client.get(url)
    assert "cannot be undone" in confirm.content.decode()
    assert services.authenticate(issued.raw_key)

    response = owner_client.post(url, follow=True)
    assert "is revoked" in response.content.decode()
    with pytest.raises(services.AuthenticationFailed, match="revoked"):
        services.authenticate(issued.raw_key)


def test_rotating_shows_the_new_key_once_and_the_old_one_fails(
    owner_client, owner, api_key_factory
):
    issued = api_key_factory(owner, "server")
    url = f"/dashboard/keys/{issued.api_key.pk}/rotate"
    assert "stops working at once" in owner_client.get(url).content.decode()

    response = owner_client.post(url)

    new_raw = KEY_RE.search(response.content.decode()).group(0)
    assert new_raw != issued.raw_key
    assert services.authenticate(new_raw).pk == issued.api_key.pk
    with pytest.raises(services.AuthenticationFailed):
        services.authenticate(issued.raw_key)


def test_a_revoked_key_cannot_be_rotated(owner_client, owner, api_key_factory):
    issued = api_key_factory(owner)
    services.revoke_key(issued.api_key)
    response = owner_client.post(f"/dashboard/keys/{issued.api_key.pk}/rotate", follow=True)
    assert "cannot be rotated" in response.content.decode()
    assert not KEY_RE.search(response.content.decode())


def test_key_forms_need_the_csrf_token(owner):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post("/dashboard/keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.filter(user=owner).exists()
