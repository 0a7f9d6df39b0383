"""The key service: issuing, authenticating, rotating and revoking keys, and pepper rotation."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone

from keys import crypto
from keys.models import ApiKey
from keys.services import (
    AuthenticationFailed,
    KeyRevoked,
    authenticate,
    create_key,
    revoke_key,
    rotate_key,
)

OLD_PEPPER = "old-pepper-secret-0123456789"
NEW_PEPPER = "new-pepper-secret-9876543210"


def secret_of(raw: str) -> str:
    return raw.rsplit("_", 1)[1]


def one_character_changed(raw: str) -> str:
    return raw[:-1] + ("b" if raw[-1] == "a" else "a")


def reload(api_key: ApiKey) -> ApiKey:
    return ApiKey.objects.get(pk=api_key.pk)


def failure_reason(raw: str) -> str:
    with pytest.raises(AuthenticationFailed) as excinfo:
        authenticate(raw)
    return excinfo.value.reason


def hmac_hex(pepper: str, raw: str) -> str:
    return hmac.new(pepper.encode(), raw.encode(), hashlib.sha256).hexdigest()


def assert_nothing_stored_reveals(api_key: ApiKey, raw: str) -> None:
    row = reload(api_key)
    stored = {field.attname: getattr(row, field.attname) for field in ApiKey._meta.concrete_fields}
    stored.update(ApiKey.objects.filter(pk=row.pk).values().get())
    for field, value in stored.items():
        text = str(value)
        assert raw not in text, field
        assert secret_of(raw) not in text, field
    assert raw not in str(row)
    assert secret_of(raw) not in str(row)


# --- create_key -----------------------------------------------------------------------------------


def test_it_issues_a_key_that_authenticates_as_its_owner(owner):
    issued = create_key(owner.personal_account, "Deploy bot")

    assert crypto.parse_key(issued.raw_key) is not None
    assert authenticate(issued.raw_key).pk == issued.api_key.pk


def test_it_stores_the_name_lookup_id_and_current_pepper_id(owner, settings):
    settings.API_KEY_PEPPERS = f"now:{NEW_PEPPER},old:{OLD_PEPPER}"

    issued = create_key(owner.personal_account, "Deploy bot")

    row = reload(issued.api_key)
    parsed = crypto.parse_key(issued.raw_key)
    assert parsed is not None
    assert row.user == owner
    assert row.name == "Deploy bot"
    assert row.lookup_id == parsed.lookup_id
    assert row.pepper_id == "now"
    assert row.secret_hash == hmac_hex(NEW_PEPPER, issued.raw_key)
    assert (row.expires_at, row.revoked_at, row.rotated_at, row.last_used_at) == (None,) * 4


def test_it_gives_every_key_its_own_raw_key_and_lookup_id(owner, api_key_factory):
    first = api_key_factory(owner)
    second = api_key_factory(owner)

    assert first.raw_key != second.raw_key
    assert first.api_key.lookup_id != second.api_key.lookup_id


def test_it_stores_nothing_that_reveals_the_raw_key(owner, api_key_factory, settings):
    settings.API_KEY_PEPPERS = f"now:{NEW_PEPPER}"
    issued = api_key_factory(owner, name="Deploy bot")

    assert_nothing_stored_reveals(issued.api_key, issued.raw_key)
    assert ApiKey.objects.filter(pk=issued.api_key.pk).values().get()["secret_hash"] == hmac_hex(
        NEW_PEPPER, issued.raw_key
    )


def test_it_tidies_the_whitespace_in_a_name(owner):
    issued = create_key(owner.personal_account, "  Deploy \t  bot \n")

    assert reload(issued.api_key).name == "Deploy bot"


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_it_rejects_a_blank_name(owner, name):
    with pytest.raises(ValueError, match="name"):
        create_key(owner.personal_account, name)

    assert not ApiKey.objects.exists()


def test_it_accepts_a_name_of_the_maximum_length(owner):
    issued = create_key(owner.personal_account, "x" * 100)

    assert reload(issued.api_key).name == "x" * 100


def test_it_rejects_an_over_long_name(owner):
    with pytest.raises(ValueError, match="100"):
        create_key(owner.personal_account, "x" * 101)

    assert not ApiKey.objects.exists()


def test_it_rejects_an_expiry_in_the_past(owner):
    with pytest.raises(ValueError, match="expiry"):
        create_key(
            owner.personal_account, "Deploy bot", expires_at=timezone.now() - timedelta(minutes=1)
        )

    assert not ApiKey.objects.exists()


def test_it_keeps_an_expiry_in_the_future(owner, api_key_factory):
    expires_at = timezone.now() + timedelta(days=30)

    issued = api_key_factory(owner, expires_at=expires_at)

    assert reload(issued.api_key).expires_at == expires_at
    assert authenticate(issued.raw_key).pk == issued.api_key.pk


# --- authenticate ---------------------------------------------------------------------------------


def test_it_returns_the_key_with_its_account_loaded(
    owner, api_key_factory, django_assert_num_queries
):
    issued = api_key_factory(owner)

    api_key = authenticate(issued.raw_key)

    assert api_key.pk == issued.api_key.pk
    with django_assert_num_queries(0):
        assert api_key.account.personal_owner.email == owner.email


def test_it_tells_each_users_key_apart(owner, outsider, api_key_factory):
    owners = api_key_factory(owner)
    outsiders = api_key_factory(outsider)

    assert authenticate(owners.raw_key).user == owner
    assert authenticate(outsiders.raw_key).user == outsider


@pytest.mark.parametrize("raw", ["", "garbage", "sk-seedream-", "Bearer sk-seedream-0_a"])
def test_it_rejects_a_malformed_key(db, raw):
    assert failure_reason(raw) == "malformed"


def test_it_rejects_an_issued_key_wrapped_in_a_bearer_prefix_as_malformed(owner, api_key_factory):
    issued = api_key_factory(owner)

    assert failure_reason(f"Bearer {issued.raw_key}") == "malformed"
    assert failure_reason(f" {issued.raw_key} ") == "malformed"


def test_it_rejects_an_issued_key_with_a_trailing_newline_as_malformed(owner, api_key_factory):
    issued = api_key_factory(owner)

    assert failure_reason(issued.raw_key + "\n") == "malformed"


def test_it_rejects_a_well_formed_key_that_was_never_issued(owner, api_key_factory):
    api_key_factory(owner)

    assert failure_reason(crypto.generate_key(crypto.generate_lookup_id())) == "unknown"


def test_it_rejects_a_right_lookup_id_with_a_wrong_secret(owner, api_key_factory):
    issued = api_key_factory(owner)
    forged = crypto.generate_key(issued.api_key.lookup_id)

    assert failure_reason(forged) == "unknown"
    assert failure_reason(one_character_changed(issued.raw_key)) == "unknown"
    assert authenticate(issued.raw_key).pk == issued.api_key.pk


def test_it_rejects_a_revoked_key(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(issued.api_key)

    assert failure_reason(issued.raw_key) == "revoked"


def test_it_does_not_reveal_that_a_revoked_key_exists_to_a_wrong_secret(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(issued.api_key)

    assert failure_reason(crypto.generate_key(issued.api_key.lookup_id)) == "unknown"


def test_it_rejects_an_expired_key(owner, api_key_factory):
    issued = api_key_factory(owner, expires_at=timezone.now() + timedelta(days=1))
    assert authenticate(issued.raw_key).pk == issued.api_key.pk
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert failure_reason(issued.raw_key) == "expired"


def test_it_rejects_the_key_of_an_inactive_user(owner, api_key_factory):
    issued = api_key_factory(owner)
    owner.is_active = False
    owner.save(update_fields=["is_active"])

    assert failure_reason(issued.raw_key) == "inactive"


def test_a_failed_attempt_does_not_count_as_use(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(issued.api_key)

    failure_reason(issued.raw_key)
    failure_reason(crypto.generate_key(issued.api_key.lookup_id))

    assert reload(issued.api_key).last_used_at is None


# --- last_used_at ---------------------------------------------------------------------------------


def test_it_records_the_first_use(owner, api_key_factory):
    issued = api_key_factory(owner)
    before = timezone.now()

    returned = authenticate(issued.raw_key)

    after = timezone.now()
    last_used_at = reload(issued.api_key).last_used_at
    assert last_used_at is not None
    assert before <= last_used_at <= after
    assert returned.last_used_at == last_used_at


def test_it_does_not_rewrite_last_use_within_the_resolution_window(
    owner, api_key_factory, settings
):
    settings.API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
    issued = api_key_factory(owner)
    authenticate(issued.raw_key)
    recent = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=recent)

    authenticate(issued.raw_key)

    assert reload(issued.api_key).last_used_at == recent


def test_it_rewrites_last_use_after_the_resolution_window(owner, api_key_factory, settings):
    settings.API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
    issued = api_key_factory(owner)
    authenticate(issued.raw_key)
    stale = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=stale)
    before = timezone.now()

    authenticate(issued.raw_key)

    assert reload(issued.api_key).last_used_at >= before


def test_the_resolution_window_comes_from_settings(owner, api_key_factory, settings):
    settings.API_KEY_LAST_USED_RESOLUTION_SECONDS = 10
    issued = api_key_factory(owner)
    authenticate(issued.raw_key)
    older = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last_used_at=older)

    authenticate(issued.raw_key)

    assert reload(issued.api_key).last_used_at > older


# --- pepper rotation ------------------------------------------------------------------------------


def test_a_key_under_an_older_pepper_still_works_and_moves_to_the_current_one(
    owner, api_key_factory, settings
):
    settings.API_KEY_PEPPERS = f"old:{OLD_PEPPER}"
    issued = api_key_factory(owner)
    assert reload(issued.api_key).pepper_id == "old"
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER},old:{OLD_PEPPER}"

    assert authenticate(issued.raw_key).pk == issued.api_key.pk

    row = reload(issued.api_key)
    assert row.pepper_id == "new"
    assert row.secret_hash == hmac_hex(NEW_PEPPER, issued.raw_key)
    assert_nothing_stored_reveals(row, issued.raw_key)


def test_a_migrated_key_works_after_its_old_pepper_is_dropped(owner, api_key_factory, settings):
    settings.API_KEY_PEPPERS = f"old:{OLD_PEPPER}"
    issued = api_key_factory(owner)
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER},old:{OLD_PEPPER}"
    authenticate(issued.raw_key)
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER}"

    assert authenticate(issued.raw_key).pk == issued.api_key.pk


def test_a_key_unused_before_its_pepper_is_dropped_stops_working(owner, api_key_factory, settings):
    settings.API_KEY_PEPPERS = f"old:{OLD_PEPPER}"
    unused = api_key_factory(owner, name="unused")
    used = api_key_factory(owner, name="used")
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER},old:{OLD_PEPPER}"
    authenticate(used.raw_key)
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER}"

    assert failure_reason(unused.raw_key) == "unknown"
    assert reload(unused.api_key).pepper_id == "old"
    assert authenticate(used.raw_key).pk == used.api_key.pk


def test_a_rotation_wins_over_a_concurrent_pepper_migration(owner, api_key_factory, settings):
    from keys.services import _touch, _touch_changes

    settings.API_KEY_PEPPERS = f"old:{OLD_PEPPER}"
    issued = api_key_factory(owner)
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER},old:{OLD_PEPPER}"
    # A request verified the old key and is about to migrate its hash when the key rotates.
    verified = reload(issued.api_key)
    rotated = rotate_key(issued.api_key)

    _touch(verified, _touch_changes(verified, issued.raw_key))

    assert authenticate(rotated.raw_key).pk == issued.api_key.pk
    assert reload(issued.api_key).secret_hash == hmac_hex(NEW_PEPPER, rotated.raw_key)


# --- rotate_key -----------------------------------------------------------------------------------


def test_rotating_a_key_replaces_its_secret_but_keeps_the_key(owner, api_key_factory):
    expires_at = timezone.now() + timedelta(days=7)
    issued = api_key_factory(owner, name="Deploy bot", expires_at=expires_at)
    before = reload(issued.api_key)

    rotated = rotate_key(issued.api_key)

    assert rotated.raw_key != issued.raw_key
    assert failure_reason(issued.raw_key) == "unknown"
    assert authenticate(rotated.raw_key).pk == issued.api_key.pk
    row = reload(issued.api_key)
    assert row.pk == before.pk
    assert row.user == owner
    assert row.name == "Deploy bot"
    assert row.expires_at == expires_at
    assert row.created_at == before.created_at
    assert row.lookup_id != before.lookup_id
    assert row.rotated_at is not None
    assert before.rotated_at is None
    assert rotated.api_key.pk == before.pk
    assert_nothing_stored_reveals(row, rotated.raw_key)


def test_rotating_moves_the_key_to_the_current_pepper(owner, api_key_factory, settings):
    settings.API_KEY_PEPPERS = f"old:{OLD_PEPPER}"
    issued = api_key_factory(owner)
    settings.API_KEY_PEPPERS = f"new:{NEW_PEPPER}"

    rotated = rotate_key(issued.api_key)

    row = reload(issued.api_key)
    assert row.pepper_id == "new"
    assert row.secret_hash == hmac_hex(NEW_PEPPER, rotated.raw_key)


def test_it_refuses_to_rotate_a_revoked_key(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(issued.api_key)
    before = reload(issued.api_key)

    with pytest.raises(KeyRevoked):
        rotate_key(issued.api_key)

    row = reload(issued.api_key)
    assert (row.lookup_id, row.secret_hash, row.rotated_at) == (
        before.lookup_id,
        before.secret_hash,
        None,
    )
    assert failure_reason(issued.raw_key) == "revoked"


def test_it_refuses_to_rotate_a_key_revoked_through_another_instance(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(reload(issued.api_key))

    with pytest.raises(KeyRevoked):
        rotate_key(issued.api_key)


# --- revoke_key -----------------------------------------------------------------------------------


def test_a_revoked_key_fails_on_the_very_next_attempt(owner, api_key_factory):
    issued = api_key_factory(owner)
    assert authenticate(issued.raw_key).pk == issued.api_key.pk

    revoked = revoke_key(issued.api_key)

    assert revoked.revoked_at is not None
    assert reload(issued.api_key).revoked_at == revoked.revoked_at
    assert failure_reason(issued.raw_key) == "revoked"


def test_revoking_one_key_leaves_the_others_working(owner, outsider, api_key_factory):
    revoked = api_key_factory(owner, name="revoked")
    kept = api_key_factory(owner, name="kept")
    outsiders = api_key_factory(outsider)

    revoke_key(revoked.api_key)

    assert authenticate(kept.raw_key).pk == kept.api_key.pk
    assert authenticate(outsiders.raw_key).pk == outsiders.api_key.pk


def test_revoking_twice_keeps_the_first_revocation_time(owner, api_key_factory):
    issued = api_key_factory(owner)
    first = revoke_key(issued.api_key).revoked_at
    assert first is not None

    again = revoke_key(reload(issued.api_key))

    assert again.revoked_at == first
    assert reload(issued.api_key).revoked_at == first


def test_revoking_an_already_revoked_key_does_not_move_its_revocation_time(owner, api_key_factory):
    issued = api_key_factory(owner)
    revoke_key(issued.api_key)
    earlier = timezone.now() - timedelta(days=3)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(revoked_at=earlier)

    stale = revoke_key(issued.api_key)

    assert stale.revoked_at == earlier
    assert reload(issued.api_key).revoked_at == earlier
    assert failure_reason(issued.raw_key) == "revoked"
