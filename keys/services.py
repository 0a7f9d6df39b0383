"""Every write to API keys, and the one way to authenticate a raw key."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, User

from . import controls, crypto
from .controls import InvalidControl
from .models import ApiKey, KeyIssue, SpendPeriod

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length or 100


class KeyServiceError(Exception):
    """Base for key service errors."""


class AuthenticationFailed(KeyServiceError):
    """The presented key does not grant access. ``reason`` is safe to show to its presenter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyRevoked(KeyServiceError):
    """A revoked key cannot be rotated."""


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValueError("A key needs a name")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"A key name has at most {NAME_MAX_LENGTH} characters")
    return name


def _new_material() -> tuple[str, str, str, str]:
    lookup_id = crypto.generate_lookup_id()
    raw = crypto.generate_key(lookup_id)
    pepper_id, secret_hash = crypto.hash_key(raw)
    return lookup_id, raw, pepper_id, secret_hash


def create_key(
    account: Account,
    name: str,
    *,
    made_by: User | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a new key of ``account``, made by its member ``made_by`` (for a personal account,
    its person unless said). The raw key is in the result and nowhere else, ever."""
    made_by = made_by or account.personal_owner
    if made_by is None:
        raise ValueError("An organisation's key is made by one of its members")
    name = _clean_name(name)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("The expiry must be in the future")
    for _ in range(3):
        lookup_id, raw, pepper_id, secret_hash = _new_material()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    account=account,
                    user=made_by,
                    name=name,
                    lookup_id=lookup_id,
                    pepper_id=pepper_id,
                    secret_hash=secret_hash,
                    expires_at=expires_at,
                )
        except IntegrityError:  # a lookup id collision: 64 random bits, so only in theory
            continue
        return IssuedKey(api_key, raw)
    raise RuntimeError("Could not allocate a unique key id")


def rotate_key(api_key: ApiKey) -> IssuedKey:
    """Give the key a new secret (and lookup id) under the same name, expiry and history.

    The old raw key stops working at once: its lookup id no longer exists.
    """
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is not None:
            raise KeyRevoked("A revoked key cannot be rotated")
        lookup_id, raw, pepper_id, secret_hash = _new_material()
        locked.lookup_id = lookup_id
        locked.pepper_id = pepper_id
        locked.secret_hash = secret_hash
        locked.rotated_at = timezone.now()
        locked.save(update_fields=["lookup_id", "pepper_id", "secret_hash", "rotated_at"])
    return IssuedKey(locked, raw)


# - From the keys page: one key per form, its secret shown once after the redirect -------------

# How long a new secret waits, sealed, for the page that shows it (the redirect after the POST
# takes a moment; this allows for a slow connection, not for a later visit).
REVEAL_SECONDS = 600


@dataclass(frozen=True)
class PageIssue:
    """What a form from the keys page made: the key, and whether this call made it (False: the
    same form was sent before, and nothing new was made)."""

    api_key: ApiKey
    made_now: bool


def _issue_context(user_id: int, token_hash: str) -> str:
    return f"keys.KeyIssue:{user_id}:{token_hash}"


def _record_issue(user: User, api_key: ApiKey, raw: str, token: str) -> None:
    """Inside the caller's transaction: the issue row, with the secret sealed under ``token``.
    IntegrityError if this user's form ``token`` was used already."""
    token_hash = crypto.form_token_hash(token)
    KeyIssue.objects.create(
        user=user,
        api_key=api_key,
        token_hash=token_hash,
        sealed=crypto.seal(raw, token, context=_issue_context(user.pk, token_hash)),
    )


def _issued_before(user: User, token: str) -> ApiKey:
    return (
        KeyIssue.objects.select_related("api_key")
        .get(user=user, token_hash=crypto.form_token_hash(token))
        .api_key
    )


def create_key_from_form(
    account: Account,
    user: User,
    name: str,
    *,
    token: str,
    expires_at: datetime | None = None,
) -> PageIssue:
    """``create_key``, once per form ``token``: the key and its sealed secret are written in one
    transaction, and a form sent again (even at the same moment: the unique token waits for the
    first to commit) finds the key the first one made. ``reveal`` shows the secret."""
    try:
        with transaction.atomic():
            issued = create_key(account, name, made_by=user, expires_at=expires_at)
            _record_issue(user, issued.api_key, issued.raw_key, token)
    except IntegrityError:
        return PageIssue(_issued_before(user, token), made_now=False)
    return PageIssue(issued.api_key, made_now=True)


def rotate_key_from_form(api_key: ApiKey, user: User, *, token: str) -> PageIssue:
    """``rotate_key``, once per form ``token`` (a second rotation would destroy the secret the
    first one is about to show). KeyRevoked for a revoked key."""
    try:
        with transaction.atomic():
            issued = rotate_key(api_key)
            _record_issue(user, issued.api_key, issued.raw_key, token)
    except IntegrityError:
        return PageIssue(_issued_before(user, token), made_now=False)
    return PageIssue(issued.api_key, made_now=True)


@dataclass(frozen=True)
class Reveal:
    """What the page after a form shows: the key the form made, and its secret if this is its
    one showing (None: shown already, or too late)."""

    api_key: ApiKey
    raw_key: str | None


def reveal(user: User, token: str, *, now: datetime | None = None) -> Reveal | None:
    """The secret issued by ``user``'s form ``token``, once: the ciphertext is emptied by the
    same conditional UPDATE that claims it, so of two pages asking at once only one shows it.
    None when no form of this user had that token."""
    token_hash = crypto.form_token_hash(token)
    issue = (
        KeyIssue.objects.select_related("api_key").filter(user=user, token_hash=token_hash).first()
    )
    if issue is None:
        return None
    now = now or timezone.now()
    fresh = issue.created_at > now - timedelta(seconds=REVEAL_SECONDS)
    sealed = issue.sealed
    claimed = (
        sealed is not None
        and fresh
        and KeyIssue.objects.filter(pk=issue.pk, sealed__isnull=False).update(sealed=None) == 1
    )
    raw = None
    if claimed and sealed is not None:
        raw = crypto.unseal(bytes(sealed), token, context=_issue_context(user.pk, token_hash))
    return Reveal(issue.api_key, raw)


def forget_unshown_secrets(user: User, *, now: datetime | None = None) -> int:
    """Empty the seals of ``user``'s secrets that waited longer than REVEAL_SECONDS: a page that
    never came (a closed tab, a lost connection) leaves no ciphertext behind."""
    cutoff = (now or timezone.now()) - timedelta(seconds=REVEAL_SECONDS)
    return KeyIssue.objects.filter(user=user, sealed__isnull=False, created_at__lte=cutoff).update(
        sealed=None
    )


def revoke_key(api_key: ApiKey) -> ApiKey:
    """Revoke for good; idempotent. Takes effect on the very next request in every process,
    because authentication reads the key row on every request."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def set_key_limits(
    api_key: ApiKey,
    *,
    requests_per_minute: int | None,
    images_per_minute: int | None,
    concurrent_generations: int | None,
) -> ApiKey:
    """Set (or, with None, clear) the key's own limits. They only ever lower the account's:
    a request must fit both."""
    api_key.requests_per_minute = requests_per_minute
    api_key.images_per_minute = images_per_minute
    api_key.concurrent_generations = concurrent_generations
    api_key.save(
        update_fields=["requests_per_minute", "images_per_minute", "concurrent_generations"]
    )
    return api_key


# A key's spend cap: at least one credit (no cap at all is None), and at most a trillion, so a
# few zeros too many are refused rather than read as "no cap" in all but name.
SPEND_CAP_MIN_CREDITS = 1
SPEND_CAP_MAX_CREDITS = 1_000_000_000_000


def check_spend_cap(cap_credits: int | None) -> int | None:
    """``cap_credits`` if a key can take it as its cap (None: no cap); InvalidControl if not."""
    if cap_credits is None:
        return None
    if cap_credits < SPEND_CAP_MIN_CREDITS:
        raise InvalidControl(
            f"A spend cap is at least {SPEND_CAP_MIN_CREDITS} credit: leave it empty for no cap."
        )
    if cap_credits > SPEND_CAP_MAX_CREDITS:
        raise InvalidControl(f"A spend cap is at most {SPEND_CAP_MAX_CREDITS:,} credits.")
    return cap_credits


def check_spend_period(period: str) -> str:
    """``period`` if it is one of SpendPeriod's; InvalidControl if not."""
    if period not in SpendPeriod.values:
        choices = ", ".join(SpendPeriod.values)
        raise InvalidControl(f"{str(period)[:20]!r} is not a period: one of {choices}.")
    return period


def set_spend_controls(
    api_key: ApiKey,
    *,
    cap_credits: int | None,
    period: str,
    allowed_models: Iterable[str],
    allowed_networks: Iterable[str],
    known_models: Iterable[str],
) -> ApiKey:
    """Set (or, with None and empty lists, clear) the key's spend controls, all of them or none:
    InvalidControl names the first value the key cannot take, and then nothing is saved.

    ``known_models`` are the catalog's model ids (keys does not know the catalog: the caller
    does); ``allowed_networks`` are IPs or CIDR networks, stored canonically. Each control
    applies from the key's next request, which reads the key's row. The cap is counted by
    billing in UTC windows of ``period``: a cap lowered below what the current window has
    spent refuses the key's holds until the window resets.
    """
    cap = check_spend_cap(cap_credits)
    period = check_spend_period(period)
    models = controls.parse_models(allowed_models, known_models)
    networks = controls.parse_networks(allowed_networks)
    api_key.spend_cap_credits = cap
    api_key.spend_cap_period = period
    api_key.allowed_models = models
    api_key.allowed_networks = networks
    api_key.save(
        update_fields=[
            "spend_cap_credits",
            "spend_cap_period",
            "allowed_models",
            "allowed_networks",
        ]
    )
    return api_key


def revoke_all_keys(account: Account) -> int:
    """Revoke every key ``account`` still has (closing it), and empty any of their secrets
    still waiting to be shown; returns how many keys."""
    KeyIssue.objects.filter(api_key__account=account, sealed__isnull=False).update(sealed=None)
    return ApiKey.objects.filter(account=account, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def authenticate(
    raw_key: str,
    *,
    related: tuple[str, ...] = (),
    lookup: Callable[[str], ApiKey | None] | None = None,
) -> ApiKey:
    """The active key (with its account loaded) that ``raw_key`` names, or AuthenticationFailed.

    One indexed query; ``related`` names more relations to load in it (the caller's business:
    the API loads the account's credit account and custom limits), or ``lookup`` finds the key
    (with its account) by its lookup id, for a caller with a cheaper query of its own. The reasons
    never say whether a well-formed key exists.
    """
    query = lookup or functools.partial(find_key, related=related)
    api_key = _check(raw_key, query(_lookup_id(raw_key)))
    if changes := _touch_changes(api_key, raw_key):
        _touch(api_key, changes)
    return api_key


async def aauthenticate(
    raw_key: str,
    *,
    lookup: Callable[[str], Awaitable[ApiKey | None]],
    run_write: Callable[..., Awaitable[Any]],
) -> ApiKey:
    """``authenticate`` for a caller on an event loop whose ``lookup`` is a coroutine. The ORM
    write that records the key's use (at most once a minute) goes through ``run_write(func,
    *args)``, which runs it on a thread as the caller's connection discipline requires."""
    api_key = _check(raw_key, await lookup(_lookup_id(raw_key)))
    if changes := _touch_changes(api_key, raw_key):
        await run_write(_touch, api_key, changes)
    return api_key


def _lookup_id(raw_key: str) -> str:
    parsed = crypto.parse_key(raw_key)
    if parsed is None:
        raise AuthenticationFailed("malformed")
    return parsed.lookup_id


def _check(raw_key: str, api_key: ApiKey | None) -> ApiKey:
    """``api_key`` if ``raw_key`` is its secret and it may be used now."""
    if api_key is None:
        raise AuthenticationFailed("unknown")
    if not crypto.verify_key(raw_key, api_key.pepper_id, api_key.secret_hash):
        raise AuthenticationFailed("unknown")
    if api_key.revoked_at is not None:
        raise AuthenticationFailed("revoked")
    if api_key.is_expired(timezone.now()):
        raise AuthenticationFailed("expired")
    if not api_key.account.active:
        raise AuthenticationFailed("inactive")
    return api_key


def find_key(lookup_id: str, *, related: tuple[str, ...] = ()) -> ApiKey | None:
    """The key with ``lookup_id`` and its account (and ``related``), or None."""
    try:
        return ApiKey.objects.select_related("account__personal_owner", *related).get(
            lookup_id=lookup_id
        )
    except ApiKey.DoesNotExist:
        return None


def _touch_changes(api_key: ApiKey, raw_key: str) -> dict[str, object]:
    """What to write to a key just used: its use, at most once a minute, and its hash under the
    current pepper if it was made under an old one."""
    changes: dict[str, object] = {}
    now = timezone.now()
    resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or now - api_key.last_used_at >= resolution:
        changes["last_used_at"] = now
    if api_key.pepper_id != crypto.current_pepper_id():
        changes["pepper_id"], changes["secret_hash"] = crypto.hash_key(raw_key)
    return changes


def _touch(api_key: ApiKey, changes: dict[str, object]) -> None:
    # Conditional on the hash we verified: a concurrent rotation must win over this update.
    ApiKey.objects.filter(pk=api_key.pk, secret_hash=api_key.secret_hash).update(**changes)
    for field, value in changes.items():
        setattr(api_key, field, value)
