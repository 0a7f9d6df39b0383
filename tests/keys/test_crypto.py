"""Key material: the format of a key, its parsing, and the keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from keys import crypto

PEPPER_SECRET = "crypto-test-pepper-0123456789"
KEY_SHAPE = re.compile(r"sk-seedream-[0-9a-f]{16}_[A-Za-z0-9]{43}")


@pytest.fixture
def pepper(settings) -> str:
    settings.API_KEY_PEPPERS = f"current:{PEPPER_SECRET},older:older-pepper-secret-0123"
    return PEPPER_SECRET


def new_key() -> str:
    return crypto.generate_key(crypto.generate_lookup_id())


def one_character_changed(raw: str) -> str:
    last = raw[-1]
    return raw[:-1] + ("b" if last == "a" else "a")


def test_a_key_is_the_tag_a_hex_lookup_id_and_a_long_base62_secret():
    raw = new_key()

    assert KEY_SHAPE.fullmatch(raw), raw


def test_a_key_embeds_the_lookup_id_it_was_made_for():
    lookup_id = crypto.generate_lookup_id()

    raw = crypto.generate_key(lookup_id)

    assert re.fullmatch(r"[0-9a-f]{16}", lookup_id)
    assert raw.startswith(f"sk-seedream-{lookup_id}_")


def test_two_keys_differ_even_for_the_same_lookup_id():
    lookup_id = crypto.generate_lookup_id()

    assert crypto.generate_key(lookup_id) != crypto.generate_key(lookup_id)
    assert crypto.generate_lookup_id() != crypto.generate_lookup_id()


def test_it_parses_a_generated_key_into_its_lookup_id():
    lookup_id = crypto.generate_lookup_id()
    raw = crypto.generate_key(lookup_id)

    parsed = crypto.parse_key(raw)

    assert parsed is not None
    assert parsed.raw == raw
    assert parsed.lookup_id == lookup_id


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: k.replace("sk-seedream-", "sk-seedrem-", 1), id="wrong-prefix"),
        pytest.param(lambda k: k.replace("sk-seedream-", "", 1), id="no-prefix"),
        pytest.param(lambda k: k[:-1], id="short-secret"),
        pytest.param(lambda k: k + "A", id="long-secret"),
        pytest.param(lambda k: k[:-1] + "-", id="bad-character-in-secret"),
        pytest.param(lambda k: k[:-1] + "é", id="non-ascii-in-secret"),
        pytest.param(lambda k: k[:12] + "G" + k[13:], id="non-hex-lookup-id"),
        pytest.param(lambda k: k[:12] + "A" + k[13:], id="uppercase-hex-lookup-id"),
        pytest.param(lambda k: k[:13] + k[14:], id="short-lookup-id"),
        pytest.param(lambda k: k.replace("_", "", 1), id="no-separator"),
        pytest.param(lambda k: " " + k, id="leading-space"),
        pytest.param(lambda k: k + " ", id="trailing-space"),
        pytest.param(lambda k: k[:20] + " " + k[21:], id="inner-space"),
        pytest.param(lambda k: "", id="empty"),
    ],
)
def test_it_rejects_a_malformed_key(mangle):
    raw = new_key()
    assert crypto.parse_key(raw) is not None

    assert crypto.parse_key(mangle(raw)) is None


def test_it_rejects_a_key_with_a_trailing_newline():
    assert crypto.parse_key(new_key() + "\n") is None


def test_the_hash_is_hmac_sha256_of_the_whole_key_under_the_current_pepper(pepper):
    raw = new_key()
    expected = hmac.new(pepper.encode(), raw.encode(), hashlib.sha256).hexdigest()

    assert crypto.hash_key(raw) == ("current", expected)


def test_it_hashes_under_a_named_older_pepper(pepper):
    raw = new_key()
    expected = hmac.new(b"older-pepper-secret-0123", raw.encode(), hashlib.sha256).hexdigest()

    assert crypto.hash_key(raw, "older") == ("older", expected)


def test_the_hash_changes_with_the_pepper(settings):
    raw = new_key()
    settings.API_KEY_PEPPERS = "p:first-pepper-secret-000"
    first = crypto.hash_key(raw)[1]
    settings.API_KEY_PEPPERS = "p:second-pepper-secret-00"

    assert crypto.hash_key(raw)[1] != first


def test_it_verifies_the_key_it_hashed(pepper):
    raw = new_key()
    pepper_id, digest = crypto.hash_key(raw)

    assert crypto.verify_key(raw, pepper_id, digest) is True


def test_it_does_not_verify_a_key_with_one_character_changed(pepper):
    raw = new_key()
    pepper_id, digest = crypto.hash_key(raw)

    assert crypto.verify_key(one_character_changed(raw), pepper_id, digest) is False


def test_it_does_not_verify_under_an_unknown_pepper_id(pepper):
    raw = new_key()
    _, digest = crypto.hash_key(raw)

    assert crypto.verify_key(raw, "nobody", digest) is False


def test_it_does_not_verify_under_the_wrong_known_pepper(pepper):
    raw = new_key()
    _, digest = crypto.hash_key(raw, "current")

    assert crypto.verify_key(raw, "older", digest) is False


def test_the_first_pepper_is_current(settings):
    settings.API_KEY_PEPPERS = "new:new-pepper-secret-0000, old:old-pepper-secret-0000"

    assert crypto.current_pepper_id() == "new"


@pytest.mark.parametrize(
    "peppers",
    [
        "",
        "no-separator-here-0123456",
        ":secret-without-an-id-000",
        "id:short",
        "a:ok-pepper-0123456789,b",
    ],
)
def test_it_refuses_a_misconfigured_pepper_list(settings, peppers):
    settings.API_KEY_PEPPERS = peppers

    with pytest.raises(ImproperlyConfigured):
        crypto.hash_key(new_key())


def test_the_display_prefix_reveals_only_part_of_the_lookup_id():
    lookup_id = crypto.generate_lookup_id()

    assert crypto.display_prefix(lookup_id) == f"sk-seedream-{lookup_id[:8]}"


# Sealing a new secret for its one showing (keys/views.py).


def test_a_sealed_secret_opens_only_with_its_token_and_its_row():
    token = crypto.new_form_token()
    assert crypto.is_form_token(token)
    sealed = crypto.seal("sk-seedream-secret", token, context="row:1")

    assert b"sk-seedream-secret" not in sealed
    assert crypto.unseal(sealed, token, context="row:1") == "sk-seedream-secret"
    assert crypto.unseal(sealed, crypto.new_form_token(), context="row:1") is None
    assert crypto.unseal(sealed, token, context="row:2") is None
    # Each seal has its own nonce.
    assert crypto.seal("sk-seedream-secret", token, context="row:1") != sealed


@pytest.mark.parametrize("token", ["", "short", "x" * 43 + "=", "a/b" + "c" * 40, "é" * 43])
def test_only_our_form_tokens_are_taken(token):
    assert not crypto.is_form_token(token)


def test_the_database_keeps_a_hash_of_the_token_not_the_token():
    token = crypto.new_form_token()
    assert crypto.form_token_hash(token) != token
    assert len(crypto.form_token_hash(token)) == 64
