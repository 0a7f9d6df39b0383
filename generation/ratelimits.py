"""Rate limits: requests and images per window, and generations in flight, per account and key.

An account's limits come from its tier (settings.RATE_LIMIT_TIERS: the highest tier whose
thresholds its lifetime credits and balance meet), replaced field by field by an operator's
AccountRateLimit; a key may carry lower limits of its own, counted separately. A request passes
only if every bucket it touches has room, and then all of them count it, atomically:

- with Redis (RATE_LIMIT_REDIS_URL, the production path) one Lua script checks and counts
  everything, so limits hold across every process and host that share the Redis;
- without it, the same is done in one database transaction (row locks on PostgreSQL, the
  write lock on SQLite), so limits hold across the processes that share the database;
- while a configured Redis is unreachable, as without it: limits still hold (counted afresh in
  the database), and server/outage.py says when Redis is tried again.

Windows are fixed (aligned to the epoch, RATE_LIMIT_WINDOW_SECONDS long): exactly the limit
passes in each window, and Retry-After says when the window turns over. A concurrency slot is
held by the generation's public id until the generation is settled, or until its lease runs out
if the process holding it dies, so no slot leaks forever.

Every request costs one "request"; a generation also costs n "images" and a slot.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import Account
from keys.models import ApiKey
from server import asyncdb
from server.outage import Outage

from .models import AccountRateLimit, ConcurrencySlot, RateCounter
from .refusals import RateLimited

logger = logging.getLogger(__name__)

REQUESTS, IMAGES, CONCURRENCY = "requests", "images", "concurrency"


@dataclass(frozen=True)
class Tier:
    id: str
    name: str
    min_lifetime_credits: int
    min_balance_credits: int
    requests_per_minute: int
    images_per_minute: int
    concurrent_generations: int


def tiers() -> list[Tier]:
    """The configured tiers, lowest threshold first."""
    parsed = [
        Tier(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            min_lifetime_credits=int(raw.get("min_lifetime_credits", 0)),
            min_balance_credits=int(raw.get("min_balance_credits", 0)),
            requests_per_minute=int(raw["requests_per_minute"]),
            images_per_minute=int(raw["images_per_minute"]),
            concurrent_generations=int(raw["concurrent_generations"]),
        )
        for raw in settings.RATE_LIMIT_TIERS
    ]
    return sorted(parsed, key=lambda t: (t.min_lifetime_credits, t.min_balance_credits))


def tier_for(lifetime_credits: int, balance_credits: int) -> Tier:
    qualified = [
        tier
        for tier in tiers()
        if lifetime_credits >= tier.min_lifetime_credits
        and balance_credits >= tier.min_balance_credits
    ]
    return qualified[-1] if qualified else tiers()[0]


def next_tier(current: Tier) -> Tier | None:
    ordered = tiers()
    index = next(i for i, tier in enumerate(ordered) if tier.id == current.id)
    return ordered[index + 1] if index + 1 < len(ordered) else None


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one account (and ``key_*`` to one key, None: no key limit)."""

    tier: Tier
    requests: int
    images: int
    concurrent: int
    custom: bool = False
    key_requests: int | None = None
    key_images: int | None = None
    key_concurrent: int | None = None


def _account_state(account: Account) -> tuple[int, int]:
    credit = getattr(account, "credit_account", None)
    if credit is None:
        return 0, 0
    return credit.lifetime_credits, credit.balance_credits


def limits_for(account: Account, api_key: ApiKey | None = None) -> Limits:
    """What applies to ``account`` (and ``api_key``). Reads its credit account and override
    through their relations, so loading them with the key costs no further query."""
    lifetime, balance = _account_state(account)
    tier = tier_for(lifetime, balance)
    try:
        override: AccountRateLimit | None = account.rate_limit_override
    except AccountRateLimit.DoesNotExist:
        override = None

    def pick(name: str, tier_value: int) -> int:
        value = getattr(override, name, None) if override else None
        return tier_value if value is None else int(value)

    return Limits(
        tier=tier,
        requests=pick("requests_per_minute", tier.requests_per_minute),
        images=pick("images_per_minute", tier.images_per_minute),
        concurrent=pick("concurrent_generations", tier.concurrent_generations),
        custom=override is not None,
        key_requests=api_key.requests_per_minute if api_key else None,
        key_images=api_key.images_per_minute if api_key else None,
        key_concurrent=api_key.concurrent_generations if api_key else None,
    )


# - Buckets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One counter a request must fit in: ``cost`` more within ``limit``."""

    scope: str  # "a<account id>" or "k<key id>"
    kind: str  # REQUESTS, IMAGES or CONCURRENCY
    limit: int
    cost: int


@dataclass
class Verdict:
    allowed: bool
    # After counting (or, refused, as it stood): use per (scope, kind).
    used: dict[tuple[str, str], int] = field(default_factory=dict)
    refused_by: Bucket | None = None


def _buckets(
    account_id: int, key_id: int | None, limits: Limits, *, images: int, slot: bool
) -> list[Bucket]:
    whole, key = f"a{account_id}", f"k{key_id}" if key_id else ""
    buckets = [Bucket(whole, REQUESTS, limits.requests, 1)]
    if key and limits.key_requests is not None:
        buckets.append(Bucket(key, REQUESTS, limits.key_requests, 1))
    buckets.append(Bucket(whole, IMAGES, limits.images, images))
    if key and limits.key_images is not None:
        buckets.append(Bucket(key, IMAGES, limits.key_images, images))
    if slot:
        buckets.append(Bucket(whole, CONCURRENCY, limits.concurrent, 1))
        if key and limits.key_concurrent is not None:
            buckets.append(Bucket(key, CONCURRENCY, limits.key_concurrent, 1))
    return buckets


def _window(now: float) -> tuple[int, float]:
    """The current window's number and the seconds until the next one."""
    length = settings.RATE_LIMIT_WINDOW_SECONDS
    number = int(now // length)
    return number, (number + 1) * length - now


# - Backends -------------------------------------------------------------------------------------

# KEYS: for each bucket, its counter (a window key, or a slot set). ARGV: now, window ttl, slot
# lease expiry, holder, then per bucket: kind flag (0 counter, 1 slots), cost, limit.
_LUA = """
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local holder = ARGV[4]
local used = {}
local refused = 0
for i, key in ipairs(KEYS) do
  local base = 4 + (i - 1) * 3
  local is_slot = ARGV[base + 1] == '1'
  local cost = tonumber(ARGV[base + 2])
  local limit = tonumber(ARGV[base + 3])
  local current
  if is_slot then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    current = redis.call('ZCARD', key)
  else
    current = tonumber(redis.call('GET', key) or '0')
  end
  used[i] = current
  if refused == 0 and cost > 0 and current + cost > limit then
    refused = i
  end
end
if refused > 0 then
  return {refused, unpack(used)}
end
for i, key in ipairs(KEYS) do
  local base = 4 + (i - 1) * 3
  local cost = tonumber(ARGV[base + 2])
  if cost > 0 then
    if ARGV[base + 1] == '1' then
      redis.call('ZADD', key, expiry, holder)
      redis.call('EXPIREAT', key, math.ceil(expiry) + 1)
    else
      redis.call('INCRBY', key, cost)
      redis.call('EXPIRE', key, ttl)
    end
    used[i] = used[i] + cost
  end
end
return {0, unpack(used)}
"""


@functools.cache
def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


@functools.cache
def _script(client: Any) -> Any:
    # Registered once per client: sent by its SHA (EVALSHA), the script body only when Redis
    # does not know it yet.
    return client.register_script(_LUA)


# While Redis is unreachable, this process counts in the database instead (server/outage.py).
_outage = Outage("rate_limits")
# Holders whose slots this process took in the database during an outage (arelease's shortcut).
_database_holders: set[str] = set()


def _redis() -> Any | None:
    url = settings.RATE_LIMIT_REDIS_URL
    return _redis_client(url) if url else None


# For callers on an event loop (a served web process, server/steps.py): an asyncio client, whose
# connections belong to the loop that opened them. A server has one loop for its life; another
# loop (a test's) gets a client of its own, and the previous one is let go.
_async_client: tuple[asyncio.AbstractEventLoop, str, Any, Any] | None = None


def _async_redis() -> tuple[Any, Any] | None:
    """This loop's client and its registered script, or None without Redis."""
    global _async_client
    url = settings.RATE_LIMIT_REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    if _async_client is None or _async_client[:2] != (loop, url):
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _async_client = (loop, url, client, client.register_script(_LUA))
    return _async_client[2], _async_client[3]


async def aclose() -> None:
    """Close this loop's client (a server's shutdown)."""
    global _async_client
    if _async_client is not None and _async_client[0] is asyncio.get_running_loop():
        client, _async_client = _async_client[2], None
        await client.aclose()


def _redis_key(bucket: Bucket, window: int) -> str:
    if bucket.kind == CONCURRENCY:
        return f"seedream:rl:{bucket.scope}:slots"
    return f"seedream:rl:{bucket.scope}:{bucket.kind}:{window}"


def _script_call(
    buckets: list[Bucket], holder: str, now: float, lease: float
) -> dict[str, list[Any]]:
    window, _ = _window(now)
    args: list[Any] = [now, settings.RATE_LIMIT_WINDOW_SECONDS * 2, now + lease, holder]
    for bucket in buckets:
        args += [1 if bucket.kind == CONCURRENCY else 0, bucket.cost, bucket.limit]
    return {"keys": [_redis_key(bucket, window) for bucket in buckets], "args": args}


def _check_redis(
    client: Any, buckets: list[Bucket], holder: str, now: float, lease: float
) -> Verdict:
    return _verdict(buckets, _script(client)(**_script_call(buckets, holder, now, lease)))


def _verdict(buckets: list[Bucket], result: list[Any]) -> Verdict:
    """The Lua script's answer: the refusing bucket's position (0: none), then each one's use."""
    refused, used = int(result[0]), [int(value) for value in result[1:]]
    return Verdict(
        allowed=refused == 0,
        used={(b.scope, b.kind): u for b, u in zip(buckets, used, strict=True)},
        refused_by=buckets[refused - 1] if refused else None,
    )


class _Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


def _check_database(buckets: list[Bucket], holder: str, now: float, lease: float) -> Verdict:
    """The same check in one transaction: count first (the upsert locks the row), then look;
    a refusal rolls every count back."""
    window, _ = _window(now)
    moment = timezone.now()
    counted: dict[tuple[str, str], int] = {}
    try:
        with transaction.atomic():
            # Every bucket is counted before any is judged, so a refusal reports the use of all
            # of them (its headers), as the Redis script does.
            for bucket in buckets:
                if bucket.kind == CONCURRENCY:
                    after = _take_slot(bucket, holder, moment, lease)
                else:
                    after = _count(f"{bucket.scope}:{bucket.kind}", window, bucket.cost)
                counted[(bucket.scope, bucket.kind)] = after
            for bucket in buckets:
                if bucket.cost > 0 and counted[(bucket.scope, bucket.kind)] > bucket.limit:
                    raise _Refused(Verdict(allowed=False, refused_by=bucket))
            return Verdict(allowed=True, used=counted)
    except _Refused as refused:
        # Rolled back: the use is what it was before this request.
        costs = {(b.scope, b.kind): b.cost for b in buckets}
        refused.verdict.used = {k: v - costs[k] for k, v in counted.items()}
        return refused.verdict


def _count(key: str, window: int, cost: int) -> int:
    # One statement on both PostgreSQL and SQLite (3.35+): insert or add, and read the result.
    table = RateCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (bucket, window_number, count) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (bucket, window_number) DO UPDATE SET count = {table}.count + "
            "excluded.count RETURNING count",
            [key, window, cost],
        )
        row = cursor.fetchone()
        return int(row[0])


def _take_slot(bucket: Bucket, holder: str, moment: Any, lease: float) -> int:
    # The scope's counter row for window 0 serialises slot-takers of one scope (its upsert
    # takes the row lock), so two requests cannot both see the last free slot.
    _count(f"{bucket.scope}:slots-lock", 0, 0)
    ConcurrencySlot.objects.filter(scope=bucket.scope, expires_at__lte=moment).delete()
    held = ConcurrencySlot.objects.filter(scope=bucket.scope).count()
    if held + 1 <= bucket.limit:
        ConcurrencySlot.objects.create(
            scope=bucket.scope,
            holder=holder,
            expires_at=moment + timedelta(seconds=lease),
        )
    return held + 1


# - What callers use -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """A request that passed: the headers every /v1 response carries."""

    headers: dict[str, str]


def duration(seconds: float) -> str:
    """OpenAI's reset format (Go durations): "59ms", "12s", "1m0s"."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _headers(buckets: list[Bucket], verdict: Verdict, reset: float) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind in (REQUESTS, IMAGES):
        # The tightest bucket of the kind speaks for it.
        tightest = min(
            (b for b in buckets if b.kind == kind),
            key=lambda b: b.limit - verdict.used.get((b.scope, b.kind), 0),
        )
        remaining = max(tightest.limit - verdict.used.get((tightest.scope, kind), 0), 0)
        headers[f"x-ratelimit-limit-{kind}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = duration(reset)
    return headers


def admit(
    account: Account,
    api_key: ApiKey | None,
    *,
    images: int = 0,
    slot_holder: str | None = None,
    slot_lease_seconds: float | None = None,
) -> Admission:
    """Count one request (and ``images``, and a concurrency slot held by ``slot_holder``), or
    raise RateLimited saying which limit and tier, and when to retry. Costs nothing if refused.

    The slot is held until ``release``, or for ``slot_lease_seconds`` (default
    RATE_LIMIT_SLOT_LEASE_SECONDS) if its holder dies. While Redis cannot be reached the same
    limits are counted in the database (server/outage.py): never no limit at all.
    """
    request = _Request.of(account, api_key, images, slot_holder, slot_lease_seconds)
    client = _redis()
    if client and _outage.should_try():
        try:
            verdict = _check_redis(client, *request.check_args())
        except RedisError as error:
            _outage.failed(error)
        else:
            _outage.recovered()
            return request.judge(verdict)
    return _admit_with_database(request, fallback=client is not None)


def _admit_with_database(request: _Request, *, fallback: bool) -> Admission:
    if fallback:
        _outage.fell_back()
    admission = request.judge(_check_database(*request.check_args()))
    if fallback and request.holder:
        # Its slot is a database row: whoever releases it must delete that row too.
        _database_holders.add(request.holder)
    return admission


async def aadmit(
    account: Account,
    api_key: ApiKey | None,
    *,
    images: int = 0,
    slot_holder: str | None = None,
    slot_lease_seconds: float | None = None,
) -> Admission:
    """``admit`` for a caller on the server's event loop: with Redis, without leaving the loop
    (the same checks and counts, through redis.asyncio); without it, ``admit`` on a thread."""
    found = _async_redis()
    if found is None:
        return await asyncdb.on_a_thread(
            admit,
            account,
            api_key,
            images=images,
            slot_holder=slot_holder,
            slot_lease_seconds=slot_lease_seconds,
        )
    _, script = found
    request = _Request.of(account, api_key, images, slot_holder, slot_lease_seconds)
    if _outage.should_try():
        try:
            result = await script(**_script_call(*request.check_args()))
        except RedisError as error:
            _outage.failed(error)
        else:
            _outage.recovered()
            return request.judge(_verdict(request.buckets, result))
    return await asyncdb.on_a_thread(_admit_with_database, request, fallback=True)


@dataclass(frozen=True)
class _Request:
    """One request to count: its limits and buckets, at ``now``."""

    limits: Limits
    buckets: list[Bucket]
    holder: str
    lease: float
    now: float

    @classmethod
    def of(
        cls,
        account: Account,
        api_key: ApiKey | None,
        images: int,
        slot_holder: str | None,
        slot_lease_seconds: float | None,
    ) -> _Request:
        limits = limits_for(account, api_key)
        buckets = _buckets(
            account.pk,
            api_key.pk if api_key else None,
            limits,
            images=images,
            slot=bool(slot_holder),
        )
        lease = slot_lease_seconds or settings.RATE_LIMIT_SLOT_LEASE_SECONDS
        return cls(limits, buckets, slot_holder or "", lease, time.time())

    def check_args(self) -> tuple[list[Bucket], str, float, float]:
        return self.buckets, self.holder, self.now, self.lease

    def judge(self, verdict: Verdict) -> Admission:
        """Admitted with its headers, or RateLimited."""
        _, reset = _window(self.now)
        headers = _headers(self.buckets, verdict, reset)
        if verdict.allowed:
            return Admission(headers)
        raise _refusal(verdict.refused_by, self.limits, reset, headers)


def _refusal(
    bucket: Bucket | None, limits: Limits, reset: float, headers: dict[str, str]
) -> RateLimited:
    assert bucket is not None
    whose = "this API key's" if bucket.scope.startswith("k") else "your account's"
    tier = "a custom limit" if limits.custom else f"the {limits.tier.name} tier"
    if bucket.kind == CONCURRENCY:
        wait = float(settings.RATE_LIMIT_CONCURRENCY_RETRY_SECONDS)
        what = f"{bucket.limit} generations at a time"
    else:
        wait = reset
        what = f"{bucket.limit} {bucket.kind} per {_window_words()}"
    seconds = min(max(math.ceil(wait), 1), 60)
    # Rounded up, never 0 (the SDKs ignore a zero delay): a client that waits this long after
    # the answer arrives is past the turn of the window.
    milliseconds = min(max(math.ceil(wait * 1000), 1), seconds * 1000)
    message = (
        f"Rate limit reached: {whose} limit is {what} ({tier}). "
        f"Retry after {seconds} s. See your limits in the dashboard."
    )
    # No window will ever have room for it: retrying cannot help.
    hopeless = bucket.cost > bucket.limit
    if hopeless and bucket.kind == IMAGES:
        message = (
            f"This request asks for {bucket.cost} images but {whose} limit is {what} "
            f"({tier}): ask for fewer images at a time."
        )
    elif hopeless:
        message = f"Rate limit: {whose} limit is {what} ({tier}), so no request can pass."
    return RateLimited(
        message,
        kind=bucket.kind,
        retry_after_seconds=seconds,
        retry_after_ms=milliseconds,
        tier_id=limits.tier.id,
        limit_headers=headers,
        hopeless=hopeless,
    )


def _window_words() -> str:
    length = settings.RATE_LIMIT_WINDOW_SECONDS
    return "minute" if length == 60 else f"{length} seconds"


def _slot_scopes(account_id: int, api_key_id: int | None) -> list[str]:
    return [f"a{account_id}"] + ([f"k{api_key_id}"] if api_key_id else [])


def release(account_id: int, api_key_id: int | None, holder: str) -> None:
    """Give back the concurrency slots ``holder`` took (idempotent), wherever they were taken:
    in Redis, or in the database while Redis was down (perhaps by another process: a playground
    run is admitted by a web process and released by a worker)."""
    scopes = _slot_scopes(account_id, api_key_id)
    client = _redis()
    if client and _outage.should_try():
        pipe = client.pipeline()
        for scope in scopes:
            pipe.zrem(f"seedream:rl:{scope}:slots", holder)
        try:
            pipe.execute()
        except RedisError as error:
            _outage.failed(error)
        else:
            _outage.recovered()
    _database_holders.discard(holder)
    ConcurrencySlot.objects.filter(scope__in=scopes, holder=holder).delete()


async def arelease(account_id: int, api_key_id: int | None, holder: str) -> None:
    """``release`` for a caller on an event loop. With Redis up, the database is asked only for
    a slot this process took there during an outage (the API's generations are released by the
    process that admitted them)."""
    found = _async_redis()
    if found is None:
        await asyncdb.on_a_thread(release, account_id, api_key_id, holder)
        return
    if _outage.should_try():
        # Two independent removals: no MULTI/EXEC around them (two round trips' worth).
        pipe = found[0].pipeline(transaction=False)
        for scope in _slot_scopes(account_id, api_key_id):
            pipe.zrem(f"seedream:rl:{scope}:slots", holder)
        try:
            await pipe.execute()
        except RedisError as error:
            _outage.failed(error)
        else:
            _outage.recovered()
    if holder in _database_holders or _outage.down:
        await asyncdb.on_a_thread(_release_in_database, account_id, api_key_id, holder)


def _release_in_database(account_id: int, api_key_id: int | None, holder: str) -> None:
    _database_holders.discard(holder)
    ConcurrencySlot.objects.filter(
        scope__in=_slot_scopes(account_id, api_key_id), holder=holder
    ).delete()


@dataclass(frozen=True)
class Usage:
    requests: int
    images: int
    concurrent: int
    reset_seconds: float


def current_usage(account: Account) -> Usage:
    """The account's use in the current window and its generations in flight (for the page)."""
    now = time.time()
    window, reset = _window(now)
    scope = f"a{account.pk}"
    client = _redis()
    if client and _outage.should_try():
        try:
            requests, images = client.mget(
                f"seedream:rl:{scope}:{REQUESTS}:{window}",
                f"seedream:rl:{scope}:{IMAGES}:{window}",
            )
            concurrent = client.zcount(f"seedream:rl:{scope}:slots", now, "+inf")
        except RedisError as error:
            _outage.failed(error)
        else:
            _outage.recovered()
            return Usage(int(requests or 0), int(images or 0), int(concurrent), reset)
    # Without Redis, or while it is down (then the database counts what is being admitted).
    counts = dict(
        RateCounter.objects.filter(
            bucket__in=[f"{scope}:{REQUESTS}", f"{scope}:{IMAGES}"], window_number=window
        ).values_list("bucket", "count")
    )
    concurrent = ConcurrencySlot.objects.filter(scope=scope, expires_at__gt=timezone.now()).count()
    return Usage(
        counts.get(f"{scope}:{REQUESTS}", 0), counts.get(f"{scope}:{IMAGES}", 0), concurrent, reset
    )


def prune_database_counters() -> int:
    """Drop finished windows and dead slots of the database backend (a periodic job)."""
    window, _ = _window(time.time())
    old, _ = (
        RateCounter.objects.filter(window_number__lt=window - 1).exclude(window_number=0).delete()
    )
    dead, _ = ConcurrencySlot.objects.filter(expires_at__lte=timezone.now()).delete()
    return old + dead
