"""The dashboard overview shows the customer's own balance, keys and generations."""

from __future__ import annotations

import pytest

from api.catalog import get_model, resolve_size
from api.services import GenerationSpec, begin_generation


@pytest.fixture
def generation_of(db):
    def make(user, prompt):
        model = get_model("seedream-4-0")
        spec = GenerationSpec(model=model, prompt=prompt, size=resolve_size(model, "1K"), n=1)
        return begin_generation(user=user, spec=spec)

    return make


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_owner_sees_their_balance_keys_and_generations_only(
    client, owner, outsider, api_key_factory, generation_of
):
    api_key_factory(owner)
    mine = generation_of(owner, "mine")
    theirs = generation_of(outsider, "theirs")
    client.force_login(owner)

    page = client.get("/dashboard/").content.decode()

    assert "960 credits" in page
    assert "$0.9600" in page
    assert "1 active" in page
    assert mine.size in page
    assert page.count("<tr>") == 2  # the header row and my one generation
    assert theirs.prompt not in page
