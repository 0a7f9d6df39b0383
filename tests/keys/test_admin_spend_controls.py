"""Operators see and change a key's spend controls in the admin, checked by the customer's
rules, without touching anything else of the key."""

from __future__ import annotations

import pytest

from keys import services
from keys.models import ApiKey

FORM = {
    "requests_per_minute": "",
    "images_per_minute": "",
    "concurrent_generations": "",
    "spend_cap_credits": "300",
    "spend_cap_period": "week",
    "allowed_models": "seedream-4-0\nseedream-3-0",
    "allowed_networks": "203.0.113.7, 2001:db8::/32",
    "_save": "Save",
}


@pytest.fixture
def operator(user_factory):
    return user_factory("ops@example.com", is_staff=True, is_superuser=True)


def change_url(api_key: ApiKey) -> str:
    return f"/admin/keys/apikey/{api_key.pk}/change/"


def test_the_change_page_has_a_spend_controls_fieldset(client, operator, owner, api_key_factory):
    key = api_key_factory(owner).api_key
    services.set_spend_controls(
        key, cap_credits=500, period="day", allowed_models=["seedream-4-0"],
        allowed_networks=["198.51.100.0/24"], known_models=["seedream-4-0"],
    )  # fmt: skip
    client.force_login(operator)

    page = client.get(change_url(key)).content.decode()

    assert "Spend controls" in page
    assert 'name="spend_cap_credits" value="500"' in page
    assert "198.51.100.0/24</textarea>" in page
    assert "seedream-4-0</textarea>" in page


def test_an_operator_sets_a_keys_spend_controls(client, operator, owner, api_key_factory):
    key = api_key_factory(owner).api_key
    client.force_login(operator)

    response = client.post(change_url(key), FORM)

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.spend_cap_credits, key.spend_cap_period) == (300, "week")
    assert key.allowed_models == ["seedream-4-0", "seedream-3-0"]
    assert key.allowed_networks == ["203.0.113.7/32", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_cap_credits", "0", "A spend cap is at least 1 credit"),
        ("allowed_networks", "10.0.0.1/8", "did you mean 10.0.0.0/8?"),
        ("allowed_models", "seedream/4", "is not a model id."),
    ],
)
def test_a_bad_value_is_refused(client, operator, owner, api_key_factory, field, value, message):
    key = api_key_factory(owner).api_key
    client.force_login(operator)

    response = client.post(change_url(key), {**FORM, field: value})

    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    key.refresh_from_db()
    assert (key.spend_cap_credits, key.allowed_models, key.allowed_networks) == (None, [], [])


def test_saving_writes_only_the_controls_not_a_revocation_made_meanwhile(
    client, operator, owner, api_key_factory, monkeypatch
):
    key = api_key_factory(owner).api_key
    client.force_login(operator)
    from keys.admin import ApiKeyAdmin

    save_model = ApiKeyAdmin.save_model

    def revoked_meanwhile(self, request, obj, form, change):
        services.revoke_key(ApiKey.objects.get(pk=obj.pk))  # another operator, a moment before
        save_model(self, request, obj, form, change)

    monkeypatch.setattr(ApiKeyAdmin, "save_model", revoked_meanwhile)

    client.post(change_url(key), FORM)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.spend_cap_credits == 300
