"""Signing secrets and signatures: made with the standardwebhooks library, verified by it and by
the official openai SDK (``webhooks.unwrap``) exactly as a customer would."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from django.core.exceptions import ImproperlyConfigured
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks import crypto, signing

BODY = json.dumps(
    {
        "object": "event",
        "id": "evt_0123",
        "type": "image.generation.completed",
        "created_at": 1_700_000_000,
        "data": {"id": "gen_abc", "status": "completed"},
    }
).encode()


def sdk(secret: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-not-used", webhook_secret=secret)


def signed(secrets: list[str], at: datetime | None = None) -> dict[str, str]:
    return signing.headers(
        secrets, webhook_id="msg_1", timestamp=at or datetime.now(UTC), body=BODY
    )


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    secret = crypto.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert crypto.new_secret() != secret


def test_the_openai_sdk_verifies_and_parses_a_signed_event() -> None:
    secret = crypto.new_secret()
    event = sdk(secret).webhooks.unwrap(BODY, signed([secret]))
    # The SDK knows only OpenAI's own event types: an unknown one is built, without
    # validation, as the first member of its union, so every field is still there.
    assert (event.id, event.type, event.created_at) == (
        "evt_0123",
        "image.generation.completed",
        1_700_000_000,
    )
    # At run time event.data.id is there too, but for a type checker some of OpenAI's events'
    # data have no id: typed code reads our data through to_dict().
    assert event.data.id == "gen_abc"  # type: ignore[union-attr]
    assert event.to_dict()["data"] == {"id": "gen_abc", "status": "completed"}


def test_standardwebhooks_verifies_a_signed_event() -> None:
    secret = crypto.new_secret()
    assert Webhook(secret).verify(BODY, signed([secret]))["data"]["id"] == "gen_abc"


def test_the_headers_are_the_standard_webhooks_ones() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, 900_000, tzinfo=UTC)
    headers = signed([crypto.new_secret()], at)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    version, _, signature = headers["webhook-signature"].partition(",")
    assert version == "v1" and len(base64.b64decode(signature)) == 32


@pytest.mark.parametrize("tamper", ["body", "secret", "id", "old"])
def test_a_tampered_or_stale_delivery_is_refused_by_both_verifiers(tamper: str) -> None:
    secret = crypto.new_secret()
    now = datetime.now(UTC)
    headers = signed([secret], now - timedelta(minutes=6) if tamper == "old" else now)
    body = BODY.replace(b"gen_abc", b"gen_abd") if tamper == "body" else BODY
    if tamper == "id":
        headers["webhook-id"] = "msg_2"
    verify_with = crypto.new_secret() if tamper == "secret" else secret
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk(verify_with).webhooks.unwrap(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(verify_with).verify(body, headers)


def test_with_two_secrets_either_one_verifies() -> None:
    old, new = crypto.new_secret(), crypto.new_secret()
    headers = signed([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert sdk(secret).webhooks.unwrap(BODY, headers).id == "evt_0123"
        Webhook(secret).verify(BODY, headers)


def test_secrets_are_encrypted_and_decrypted_under_the_configured_key(settings: Any) -> None:
    secret = crypto.new_secret()
    token = crypto.encrypt(secret)
    assert secret not in token and secret.removeprefix("whsec_") not in token
    assert crypto.decrypt(token) == secret
    settings.WEBHOOK_SECRET_KEYS = "another-key-of-at-least-thirty-two-characters"
    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt(token)


def test_the_encryption_key_rotates(settings: Any) -> None:
    old_key = "the-old-key-of-at-least-thirty-two-characters"
    new_key = "the-new-key-of-at-least-thirty-two-characters"
    settings.WEBHOOK_SECRET_KEYS = old_key
    secret = crypto.new_secret()
    token = crypto.encrypt(secret)
    settings.WEBHOOK_SECRET_KEYS = f"{new_key},{old_key}"
    assert crypto.decrypt(token) == secret  # the old key still decrypts
    rewritten = crypto.reencrypt(token)
    settings.WEBHOOK_SECRET_KEYS = new_key
    assert crypto.decrypt(rewritten) == secret


@pytest.mark.parametrize("keys", ["", "short", "a-good-key-of-at-least-thirty-two-chars,short"])
def test_a_weak_encryption_key_is_refused(settings: Any, keys: str) -> None:
    settings.WEBHOOK_SECRET_KEYS = keys
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_SECRET_KEYS"):
        crypto.encrypt(crypto.new_secret())
