"""Signing secrets: made here, shown to their owner once, kept encrypted at rest.

A secret looks like ``whsec_<base64 of 32 random bytes>``, the Standard Webhooks form that both
the ``standardwebhooks`` library and the openai SDK's ``webhooks.unwrap`` accept as it is.

We must sign every delivery, so a secret cannot be hashed like an API key: it is encrypted with
Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under the keys in
WEBHOOK_SECRET_KEYS, a server secret apart from SECRET_KEY. That setting lists secrets of 32+
characters, each stretched into a Fernet key with HKDF-SHA256; the first encrypts, all of them
decrypt (MultiFernet), so the key can rotate: ``reencrypt`` rewrites a token under the first.
"""

from __future__ import annotations

import base64
import functools
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SECRET_PREFIX = "whsec_"  # noqa: S105  (a format prefix, not a secret)
SECRET_BYTES = 32
KEY_MIN_CHARS = 32
_HKDF_INFO = b"seedream-api webhook signing secrets v1"

__all__ = ["SECRET_PREFIX", "InvalidToken", "decrypt", "encrypt", "new_secret", "reencrypt"]


def new_secret() -> str:
    """A new signing secret, ``whsec_`` and the base64 of 32 bytes from ``secrets``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def encrypt(secret: str) -> str:
    """``secret`` encrypted under the current key: a Fernet token (ASCII), safe to store."""
    return _fernet(settings.WEBHOOK_SECRET_KEYS).encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    """The secret in ``token``, under whichever configured key made it (InvalidToken if
    none did: a key was dropped before its tokens were re-encrypted)."""
    return _fernet(settings.WEBHOOK_SECRET_KEYS).decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """``token`` encrypted again under the current (first) key."""
    return _fernet(settings.WEBHOOK_SECRET_KEYS).rotate(token.encode()).decode()


@functools.lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    # Keyed by the setting's value, so a test (or a reload) that changes it gets its own.
    secrets_ = [item.strip() for item in keys.split(",") if item.strip()]
    if not secrets_ or any(len(item) < KEY_MIN_CHARS for item in secrets_):
        raise ImproperlyConfigured(
            f"WEBHOOK_SECRET_KEYS must list secrets of {KEY_MIN_CHARS}+ characters, "
            "separated by commas"
        )
    return MultiFernet([Fernet(_derive(item)) for item in secrets_])


def _derive(key_secret: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        key_secret.encode()
    )
    return base64.urlsafe_b64encode(key)
