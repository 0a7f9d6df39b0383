"""Closing an account: keys die at once, content is deleted, the books are kept, anonymously."""

from __future__ import annotations

import json

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.files.storage import default_storage

from accounts.models import User
from billing.models import LedgerEntry
from generation.models import Generation, Image
from keys.models import ApiKey
from tests.support.money import assert_ledger_balanced

URL = "/dashboard/account/close/"


def generate(client, key, prompt="a lighthouse at dusk"):
    return client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def signed_in(client, owner):
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    client.force_login(owner)
    return client


def test_a_visitor_is_sent_to_log_in(client):
    for url in (URL, "/dashboard/account/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_page_states_the_policy_and_asks_for_the_password(signed_in, owner):
    page = signed_in.get(URL).content.decode()

    assert "Every API key on the account is revoked" in page
    assert "What we keep, and why" in page
    assert 'autocomplete="current-password"' in page
    assert owner.email in page


def test_closing_revokes_keys_deletes_content_and_keeps_the_ledger(
    signed_in, client, owner, api_key_factory, outsider, django_capture_on_commit_callbacks
):
    raw_key = api_key_factory(owner).raw_key
    second_key = api_key_factory(owner, "second").raw_key
    outsider_key = api_key_factory(outsider).raw_key
    made = generate(client, raw_key)
    assert made.status_code == 200, made.content
    image_path = made.json()["data"][0]["url"].removeprefix("http://testserver")
    image = Image.objects.get(account=owner.personal_account)
    assert default_storage.exists(image.file.name)
    assert generate(client, outsider_key, prompt="outsider's own").status_code == 200
    Authenticator.objects.create(user=owner, type=Authenticator.Type.RECOVERY_CODES, data={})
    ledger = LedgerEntry.objects.filter(account__owner__personal_owner=owner)
    ledger_before = list(ledger.values_list("id", flat=True))

    with django_capture_on_commit_callbacks(execute=True):  # the files go after the commit
        response = client.post(URL, {"confirmation": "pw"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/account/closed/"
    assert client.get(response["Location"]).status_code == 200
    # Signed out, and the keys are dead on the very next call.
    assert client.get("/dashboard/").status_code == 302
    for key in (raw_key, second_key):
        refused = generate(client, key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    assert ApiKey.objects.filter(user=owner, revoked_at__isnull=True).count() == 0
    # Content gone: images, their files and their URLs; prompts blanked.
    assert not Image.objects.filter(account=owner.personal_account).exists()
    assert not default_storage.exists(image.file.name)
    assert client.get(image_path).status_code == 404
    generation = Generation.objects.get(user=owner)
    assert (generation.prompt, generation.params) == ("", {})
    # The books stay, whole and balanced, without the email address.
    assert (generation.charged_credits, generation.images_delivered) == (40, 1)
    assert list(ledger.values_list("id", flat=True)) == ledger_before
    assert assert_ledger_balanced(owner) == 960
    owner.refresh_from_db()
    assert owner.email == f"closed-{owner.pk}@closed.invalid"
    assert not owner.is_active
    assert not owner.has_usable_password()
    assert owner.closed_at is not None
    assert not EmailAddress.objects.filter(user=owner).exists()
    assert not Authenticator.objects.filter(user=owner).exists()
    # The outsider loses nothing.
    assert generate(client, outsider_key).status_code == 200
    assert Generation.objects.get(user=outsider, prompt="outsider's own")
    assert Image.objects.filter(account=outsider.personal_account).count() == 2


def test_the_email_address_can_sign_up_again_as_a_new_account(signed_in, client, owner):
    client.post(URL, {"confirmation": "pw"})

    password = "a-long-new-pass-123"
    response = client.post(
        "/accounts/signup/",
        {"email": "owner@example.com", "password1": password, "password2": password},
    )

    assert response.status_code == 302
    fresh = User.objects.get(email="owner@example.com")
    assert fresh.pk != owner.pk
    assert fresh.closed_at is None


def test_a_wrong_password_closes_nothing(signed_in, client, owner, api_key_factory):
    raw_key = api_key_factory(owner).raw_key

    response = client.post(URL, {"confirmation": "not my password"})

    assert response.status_code == 200
    assert "That is not your password." in response.content.decode()
    owner.refresh_from_db()
    assert owner.is_active and owner.closed_at is None
    assert generate(client, raw_key).status_code == 200


def test_an_account_without_a_password_confirms_with_its_email(client, user_factory):
    user = user_factory("social@example.com")
    user.set_unusable_password()
    user.save()
    client.force_login(user)

    wrong = client.post(URL, {"confirmation": "someone@example.com"})
    assert wrong.status_code == 200
    assert "not this account" in wrong.content.decode()

    right = client.post(URL, {"confirmation": " Social@Example.com "})
    assert right.status_code == 302
    user.refresh_from_db()
    assert user.closed_at is not None


def test_a_superuser_cannot_close_itself_from_the_dashboard(client, user_factory):
    admin = user_factory("root@example.com", is_superuser=True, is_staff=True)
    client.force_login(admin)

    response = client.post(URL, {"confirmation": "pw"})

    assert response.status_code == 403
    admin.refresh_from_db()
    assert admin.is_active and admin.closed_at is None


def test_the_form_needs_the_csrf_token(owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    assert strict.post(URL, {"confirmation": "pw"}).status_code == 403
    owner.refresh_from_db()
    assert owner.closed_at is None
