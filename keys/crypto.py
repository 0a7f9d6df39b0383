"""Key material: generation, parsing and the keyed hash. No database, no Django models.

A key looks like ``sk-seedream-<lookup id>_<secret>``:

- ``lookup_id``: 16 lowercase hex characters, public, stored in clear and indexed, so that
  verifying a key is one indexed read plus one HMAC, never a scan;
- ``secret``: 43 base62 characters from ``secrets`` (256 bits), never stored.

What is stored is HMAC-SHA256(pepper, whole key). The pepper is a server secret separate from
SECRET_KEY, named by a pepper id so that it can rotate: API_KEY_PEPPERS lists ``id:secret`` pairs,
the first one current.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_PREFIX = "sk-seedream-"
LOOKUP_ID_LENGTH = 16
SECRET_LENGTH = 43
_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(
    rf"^{re.escape(KEY_PREFIX)}(?P<lookup>[0-9a-f]{{{LOOKUP_ID_LENGTH}}})_"
    rf"(?P<secret>[A-Za-z0-9]{{{SECRET_LENGTH}}})$"
)


@dataclass(frozen=True)
class ParsedKey:
    raw: str
    lookup_id: str


def generate_lookup_id() -> str:
    return secrets.token_hex(LOOKUP_ID_LENGTH // 2)


def generate_key(lookup_id: str) -> str:
    """A new raw key for ``lookup_id``: shown to its owner once, then only its hash is kept."""
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    return f"{KEY_PREFIX}{lookup_id}_{secret}"


def parse_key(raw: str) -> ParsedKey | None:
    """The key's lookup id if ``raw`` has the shape of one of our keys, else None.

    A cheap format check first, so that garbage never reaches the database.
    """
    match = _KEY_RE.fullmatch(raw)
    if match is None:
        return None
    return ParsedKey(raw=raw, lookup_id=match["lookup"])


def display_prefix(lookup_id: str) -> str:
    """What the dashboard shows to identify a key without revealing it."""
    return f"{KEY_PREFIX}{lookup_id[:8]}"


def _peppers() -> list[tuple[str, bytes]]:
    pairs = []
    for item in settings.API_KEY_PEPPERS.split(","):
        pepper_id, sep, secret = item.strip().partition(":")
        if not sep or not pepper_id or len(secret) < 16:
            raise ImproperlyConfigured(
                "API_KEY_PEPPERS must be 'id:secret' pairs with secrets of 16+ characters"
            )
        pairs.append((pepper_id, secret.encode()))
    return pairs


def current_pepper_id() -> str:
    return _peppers()[0][0]


def hash_key(raw: str, pepper_id: str | None = None) -> tuple[str, str]:
    """(pepper id, hex HMAC-SHA256 of the key) under the named pepper, or the current one."""
    peppers = _peppers()
    if pepper_id is None:
        pepper_id, pepper = peppers[0]
    else:
        found = dict(peppers).get(pepper_id)
        if found is None:
            raise KeyError(pepper_id)
        pepper = found
    return pepper_id, hmac.new(pepper, raw.encode(), hashlib.sha256).hexdigest()


def verify_key(raw: str, pepper_id: str, stored_hash: str) -> bool:
    """Constant-time check of ``raw`` against a stored hash. An unknown pepper never matches."""
    try:
        _, candidate = hash_key(raw, pepper_id)
    except KeyError:
        return False
    return hmac.compare_digest(candidate, stored_hash)


# - Handing a new secret from the POST that made it to the page that shows it ------------------
#
# The keys page follows post/redirect/get, so a new secret must cross from the POST to the GET
# after it. It crosses sealed (AES-256-GCM) under a key derived from the page's form token,
# which only the browser holds: in the form's hidden field, then in a short-lived cookie. The
# database holds the ciphertext and a SHA-256 of the token, neither of which opens it; the token
# alone opens nothing once the ciphertext is gone (at its one showing, or when it goes stale).

FORM_TOKEN_BYTES = 32
_FORM_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SEAL_INFO = b"seedream keys: a new secret on its way to its one showing"
_NONCE_BYTES = 12


def new_form_token() -> str:
    """A random token for one form: 256 bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(FORM_TOKEN_BYTES)


def is_form_token(token: str) -> bool:
    return bool(_FORM_TOKEN_RE.fullmatch(token))


def form_token_hash(token: str) -> str:
    """What the database keeps of a form token: enough to recognise it, not to open a seal (the
    token has 256 random bits, so no key stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _seal_key(token: str) -> bytes:
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=_SEAL_INFO)
    return hkdf.derive(token.encode())


def seal(raw_key: str, token: str, *, context: str) -> bytes:
    """``raw_key`` encrypted under ``token``; ``context`` (the row it is stored in) is
    authenticated with it, so a seal moved to another row does not open."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(_seal_key(token)).encrypt(nonce, raw_key.encode(), context.encode())


def unseal(sealed: bytes, token: str, *, context: str) -> str | None:
    """The raw key in ``sealed``, or None if ``token`` or ``context`` is not the one it was
    sealed with."""
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return AESGCM(_seal_key(token)).decrypt(nonce, ciphertext, context.encode()).decode()
    except InvalidTag:
        return None
