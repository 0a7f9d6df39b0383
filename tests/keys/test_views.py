"""The API keys pages: the owner manages their keys; an outsider gets 404; visitors log in."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from keys import services
from keys.models import ApiKey, KeyIssue

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


def form_token(page: str) -> str:
    match = re.search(r'name="token" value="([A-Za-z0-9_-]{43})"', page)
    assert match, "no form token on the page"
    return match.group(1)


def test_the_owner_creates_a_key_and_sees_it_exactly_once(owner_client, owner):
    token = form_token(owner_client.get("/dashboard/keys/").content.decode())

    response = owner_client.post(
        "/dashboard/keys/", {"name": "  laptop  ", "expires_on": "", "token": token}
    )

    # Post/redirect/get: the POST's answer is a redirect, carrying no secret.
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/keys/"
    assert not KEY_RE.search(response.content.decode())
    cookie = response.cookies["seedream_new_key"]
    assert cookie.value == token
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard/keys/" and int(cookie["max-age"]) == 600

    shown = owner_client.get("/dashboard/keys/")
    assert "no-store" in shown["Cache-Control"]
    page = shown.content.decode()
    raw = KEY_RE.search(page).group(0)
    assert page.count(raw) == 1
    assert page.count('<dialog class="modal" id="new-key"') == 1
    api_key = services.authenticate(raw)
    assert (api_key.user, api_key.name) == (owner, "laptop")
    assert shown.cookies["seedream_new_key"].value == ""  # deleted as it is shown

    # Reloaded: the key is listed, its secret gone for good, and no second key made.
    listing = owner_client.get("/dashboard/keys/").content.decode()
    assert raw not in listing
    assert api_key.prefix in listing
    assert not KEY_RE.search(listing)
    assert ApiKey.objects.filter(user=owner).count() == 1


def test_the_same_form_sent_again_makes_no_second_key(owner_client, owner):
    token = form_token(owner_client.get("/dashboard/keys/").content.decode())
    form = {"name": "laptop", "token": token}

    owner_client.post("/dashboard/keys/", form)
    raw = KEY_RE.search(owner_client.get("/dashboard/keys/").content.decode()).group(0)
    # Back to the form and sent again, or a double click's second request.
    again = owner_client.post("/dashboard/keys/", form)
    assert again.status_code == 302
    page = owner_client.get("/dashboard/keys/").content.decode()

    assert ApiKey.objects.filter(user=owner).count() == 1
    assert not KEY_RE.search(page)
    assert "was made and shown already" in page
    assert services.authenticate(raw).name == "laptop"


def test_a_double_click_shows_the_one_key_on_the_page_that_follows(owner_client, owner):
    token = form_token(owner_client.get("/dashboard/keys/").content.decode())
    # Both requests land before the browser follows a redirect: it follows the last one.
    owner_client.post("/dashboard/keys/", {"name": "twice", "token": token})
    owner_client.post("/dashboard/keys/", {"name": "twice", "token": token})

    page = owner_client.get("/dashboard/keys/").content.decode()

    (api_key,) = ApiKey.objects.filter(user=owner)
    raw = KEY_RE.search(page).group(0)
    assert services.authenticate(raw).pk == api_key.pk


def test_each_new_form_makes_its_own_key(owner_client, owner):
    for name in ("first", "second"):
        token = form_token(owner_client.get("/dashboard/keys/").content.decode())
        owner_client.post("/dashboard/keys/", {"name": name, "token": token})
        page = owner_client.get("/dashboard/keys/").content.decode()
        assert services.authenticate(KEY_RE.search(page).group(0)).name == name
        # One dialog: the second key's never opens over the first's.
        assert page.count('id="new-key"') == 1
    assert ApiKey.objects.filter(user=owner).count() == 2


def test_a_form_without_a_token_still_makes_one_key_and_shows_it(owner_client, owner):
    for token in ("", "not-a-token"):
        response = owner_client.post("/dashboard/keys/", {"name": "script", "token": token})
        assert response.status_code == 302
        page = owner_client.get("/dashboard/keys/").content.decode()
        assert KEY_RE.search(page)
    assert ApiKey.objects.filter(user=owner).count() == 2


def test_the_secret_is_stored_only_sealed_and_emptied_once_shown(owner_client, owner):
    token = form_token(owner_client.get("/dashboard/keys/").content.decode())
    owner_client.post("/dashboard/keys/", {"name": "sealed", "token": token})

    issue = KeyIssue.objects.get(user=owner)
    assert issue.token_hash != token and token not in issue.token_hash
    sealed = bytes(issue.sealed)
    # Nowhere in clear: not in the row, the session or any cookie but the token's.
    session = owner_client.session
    raw = KEY_RE.search(owner_client.get("/dashboard/keys/").content.decode()).group(0)
    assert raw.encode() not in sealed
    assert raw not in str(dict(session.items()))
    assert KeyIssue.objects.get(pk=issue.pk).sealed is None


def test_a_token_that_comes_back_too_late_shows_nothing(owner_client, owner):
    token = form_token(owner_client.get("/dashboard/keys/").content.decode())
    owner_client.post("/dashboard/keys/", {"name": "late", "token": token})
    later = timezone.now() + datetime.timedelta(seconds=services.REVEAL_SECONDS + 1)

    shown = services.reveal(owner, token, now=later)
    assert shown is not None and shown.raw_key is None
    assert services.forget_unshown_secrets(owner, now=later) == 1
    assert KeyIssue.objects.get(user=owner).sealed is None


def test_another_customers_token_reveals_nothing(client, owner, outsider):
    client.force_login(owner)
    token = form_token(client.get("/dashboard/keys/").content.decode())
    client.post("/dashboard/keys/", {"name": "mine", "token": token})

    client.force_login(outsider)
    client.cookies["seedream_new_key"] = token
    page = client.get("/dashboard/keys/").content.decode()
    assert not KEY_RE.search(page)
    assert services.reveal(outsider, token) is None
    # The owner's seal is untouched by the outsider's try.
    assert KeyIssue.objects.get(user=owner).sealed is not None


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
    confirm = owner_client.get(url).content.decode()
    assert "stops working at once" in confirm
    token = form_token(confirm)

    response = owner_client.post(url, {"token": token})
    assert response.status_code == 302 and response["Location"] == "/dashboard/keys/"
    new_raw = KEY_RE.search(owner_client.get("/dashboard/keys/").content.decode()).group(0)

    assert new_raw != issued.raw_key
    assert services.authenticate(new_raw).pk == issued.api_key.pk
    with pytest.raises(services.AuthenticationFailed):
        services.authenticate(issued.raw_key)

    # The confirmation sent again (back, or reload of the POST) does not rotate a second time,
    # which would kill the secret just shown.
    owner_client.post(url, {"token": token})
    assert services.authenticate(new_raw).pk == issued.api_key.pk
    assert not KEY_RE.search(owner_client.get("/dashboard/keys/").content.decode())


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
