"""The operator chooses the home page's showcase in the admin (Images): an action or the list's
tick box sets an image's flag, and nothing else about an image can be changed there."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from generation.models import Image
from tests.dashboard.test_storefront import stored_image

pytestmark = pytest.mark.django_db

LIST = "/admin/generation/image/"


@pytest.fixture
def operator(user_factory: Any) -> Client:
    client = Client()
    client.force_login(user_factory("ops@example.com", is_staff=True, is_superuser=True))
    return client


def test_the_operator_puts_images_on_the_home_page_and_takes_them_off(operator, owner, client):
    first = stored_image(owner, "a lighthouse at dusk")
    second = stored_image(owner, "a paper crane on a desk")

    listed = operator.get(LIST)
    assert listed.status_code == 200
    assert "a lighthouse at dusk" in listed.content.decode()
    assert f'src="/img/t/{first.token}.webp"' in listed.content.decode()
    assert '<td class="field-made_by_model">seedream-4-0</td>' in listed.content.decode()

    operator.post(LIST, {"action": "add_to_showcase", "_selected_action": [first.pk, second.pk]})
    assert set(Image.objects.filter(showcase=True)) == {first, second}
    assert "a paper crane on a desk" in client.get("/").content.decode()

    operator.post(LIST, {"action": "remove_from_showcase", "_selected_action": [second.pk]})
    assert list(Image.objects.filter(showcase=True)) == [first]
    assert "a paper crane on a desk" not in client.get("/").content.decode()


def test_only_the_flag_can_be_changed(operator, owner):
    image = stored_image(owner, "a lantern")
    url = f"/admin/generation/image/{image.pk}/change/"

    form = operator.get(url).content.decode()
    assert 'name="showcase"' in form
    for field in ("token", "width", "file", "prompt"):
        assert f'name="{field}"' not in form

    operator.post(url, {"showcase": "on", "token": "hijacked", "width": "1"})
    image.refresh_from_db()
    assert image.showcase is True
    assert (image.token, image.width) != ("hijacked", 1)


def test_images_are_neither_added_nor_deleted_in_the_admin(operator, owner):
    image = stored_image(owner, "a lantern")

    assert operator.get("/admin/generation/image/add/").status_code == 403
    assert operator.get(f"/admin/generation/image/{image.pk}/delete/").status_code == 403


def test_a_customer_cannot_reach_it(client, owner):
    client.force_login(owner)

    response = client.get(LIST)

    assert response.status_code == 302
    assert "login" in response["Location"]
