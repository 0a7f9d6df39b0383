"""A signing secret is never stored in clear and never logged: it is shown once to its owner,
kept as a Fernet token, and decrypted only to sign."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from webhooks import crypto, services
from webhooks.models import Endpoint


def stored_rows() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM webhooks_endpoint")
        return repr(cursor.fetchall())


def forms_of(secret: str) -> list[str]:
    """The secret as it could appear: whole, its base64 part, its bytes in hex."""
    body = secret.removeprefix("whsec_")
    return [secret, body, base64.b64decode(body).hex()]


@pytest.mark.smoke
def test_the_secret_is_not_in_the_database_in_clear(
    owner: Any, endpoint_factory: Callable[..., Any], receiver: Any, sent: list[Any],
) -> None:  # fmt: skip
    issued = endpoint_factory(owner, receiver.url)
    rotated = services.rotate_secret(issued.endpoint)
    rows = stored_rows()
    for secret in (issued.secret, rotated.secret):
        for form in forms_of(secret):
            assert form not in rows
    endpoint = Endpoint.objects.get()
    assert crypto.decrypt(endpoint.secret_encrypted) == rotated.secret
    assert crypto.decrypt(endpoint.previous_secret_encrypted) == issued.secret


def test_the_secret_is_never_logged(
    owner: Any, endpoint_factory: Callable[..., Any], receiver: Any, sent: list[Any],
    caplog: pytest.LogCaptureFixture, client: Any,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    client.force_login(owner)
    client.post(
        "/dashboard/webhooks/", {"url": receiver.url, "event_types": ["image.generation.failed"]}
    )
    endpoint = Endpoint.objects.get()
    secret = crypto.decrypt(endpoint.secret_encrypted)
    rotated = services.rotate_secret(endpoint).secret
    receiver.statuses = [500]
    message = services.send_test_event(endpoint)
    services.deliver(message.pk)
    assert caplog.records, "nothing was logged at all: the check would prove nothing"
    for form in forms_of(secret) + forms_of(rotated):
        assert form not in caplog.text


def test_secrets_are_reencrypted_under_a_new_key(
    owner: Any, endpoint_factory: Callable[..., Any], settings: Any
) -> None:
    old_key = "the-old-key-of-at-least-thirty-two-characters"
    new_key = "the-new-key-of-at-least-thirty-two-characters"
    settings.WEBHOOK_SECRET_KEYS = old_key
    issued = endpoint_factory(owner)
    rotated = services.rotate_secret(issued.endpoint)
    settings.WEBHOOK_SECRET_KEYS = f"{new_key},{old_key}"
    out = io.StringIO()
    call_command("reencrypt_webhook_secrets", stdout=out)
    assert out.getvalue() == "Re-encrypted the secrets of 1 webhook endpoints.\n"
    settings.WEBHOOK_SECRET_KEYS = new_key
    endpoint = Endpoint.objects.get()
    assert services.endpoint_secrets(endpoint) == [rotated.secret, issued.secret]
