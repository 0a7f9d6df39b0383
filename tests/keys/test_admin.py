"""Operators revoke keys in the admin, one way; they can never see or set a secret there."""

from __future__ import annotations

import pytest

from keys import services
from keys.models import ApiKey


@pytest.fixture
def operator(user_factory):
    return user_factory("ops@example.com", is_staff=True, is_superuser=True)


def test_an_operator_revokes_keys_with_the_admin_action(client, operator, owner, api_key_factory):
    issued = api_key_factory(owner)
    client.force_login(operator)

    response = client.post(
        "/admin/keys/apikey/",
        {"action": "revoke", "_selected_action": [issued.api_key.pk]},
        follow=True,
    )

    assert response.status_code == 200
    with pytest.raises(services.AuthenticationFailed, match="revoked"):
        services.authenticate(issued.raw_key)


def test_the_admin_change_page_cannot_unrevoke_or_show_the_hash(
    client, operator, owner, api_key_factory
):
    issued = api_key_factory(owner)
    services.revoke_key(issued.api_key)
    client.force_login(operator)
    url = f"/admin/keys/apikey/{issued.api_key.pk}/change/"

    page = client.get(url)
    client.post(url, {"revoked_at_0": "", "revoked_at_1": "", "name": "renamed"})

    assert issued.api_key.secret_hash not in page.content.decode()
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.revoked_at is not None
    assert key.name == issued.api_key.name
