"""One form, many requests at once, on PostgreSQL with a connection per thread: one key is made
and its secret is shown once (keys.services.create_key_from_form, reveal)."""

from __future__ import annotations

import pytest

from keys import crypto, services
from keys.models import ApiKey
from tests.support.concurrency import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("transactional_db")]


def test_one_form_sent_eight_times_at_once_makes_one_key(user_factory):
    user = user_factory()
    token = crypto.new_form_token()

    results = run_at_once(
        8,
        lambda i: services.create_key_from_form(
            user.personal_account, user, "double click", token=token
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.made_now for r in results) == 1
    (api_key,) = ApiKey.objects.filter(user=user)
    assert {r.api_key.pk for r in results} == {api_key.pk}


def test_a_rotation_sent_eight_times_at_once_rotates_once(user_factory, api_key_factory):
    user = user_factory()
    issued = api_key_factory(user, "server")
    token = crypto.new_form_token()

    results = run_at_once(
        8, lambda i: services.rotate_key_from_form(issued.api_key, user, token=token)
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.made_now for r in results) == 1
    shown = services.reveal(user, token)
    assert shown is not None and shown.raw_key is not None
    # The secret shown is the key's: no later rotation replaced it.
    assert services.authenticate(shown.raw_key).pk == issued.api_key.pk


def test_eight_pages_asking_at_once_show_the_secret_once(user_factory):
    user = user_factory()
    token = crypto.new_form_token()
    services.create_key_from_form(user.personal_account, user, "shown once", token=token)

    results = run_at_once(8, lambda i: services.reveal(user, token))

    assert not [r for r in results if isinstance(r, Exception)], results
    secrets = [r.raw_key for r in results if r.raw_key is not None]
    assert len(secrets) == 1
    assert services.authenticate(secrets[0]).name == "shown once"
