"""What the generation domain refuses, and why: one family of errors with a reason.

Services raise a ``Refusal`` before any work or money is committed; each carries a message for
the customer and the figures a caller may want. The /v1 surface turns a reason into OpenAI's
status, type, code and headers in one table (api/refusals.py); the dashboard shows the message
next to the form field it names.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_RETIRED = "model_retired"
    INVALID_VALUE = "invalid_value"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    NOT_FOR_SALE = "model_not_priced"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    CREDITS_OWED = "credits_owed"
    RATE_LIMITED = "rate_limited"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    BUSY = "server_busy"
    JOB_FINISHED = "job_finished"
    # The key's own spend controls (set on its page): its cap, its model allowlist.
    KEY_BUDGET_EXCEEDED = "key_budget_exceeded"
    MODEL_NOT_ALLOWED = "model_not_allowed"


class Refusal(Exception):
    """A request the domain will not take. ``param`` names the input at fault, if one is;
    ``code`` refines the reason where a client may tell cases apart (a prompt too long)."""

    def __init__(
        self, reason: Reason, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.param = param
        self.code = code


class RateLimited(Refusal):
    """Over a rate limit: which one (``kind``: requests, images or concurrency), when to retry,
    and the limiter's figures for every limit (``limit_headers``, as OpenAI's x-ratelimit-*
    headers name them). ``hopeless``: no window will ever have room, so retrying cannot help."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retry_after_seconds: int,
        retry_after_ms: int,
        tier_id: str,
        limit_headers: dict[str, str],
        hopeless: bool,
    ) -> None:
        super().__init__(Reason.RATE_LIMITED, message, code=f"rate_limit_{kind}")
        self.kind = kind
        self.retry_after_seconds = retry_after_seconds
        self.retry_after_ms = retry_after_ms
        self.tier_id = tier_id
        self.limit_headers = limit_headers
        self.hopeless = hopeless


class Busy(Refusal):
    """This process holds as many images as it may (generation/memory.py): retry after
    ``retry_after_seconds``, here or on another process."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(Reason.BUSY, message)
        self.retry_after_seconds = retry_after_seconds


def invalid(message: str, *, param: str | None, code: str = "invalid_value") -> Refusal:
    return Refusal(Reason.INVALID_VALUE, message, param=param, code=code)


class ShortOfCredits(Refusal):
    """The balance does not cover the request's hold (INSUFFICIENT_CREDITS), or the account owes
    credits after a refund or dispute and takes no new work until they are paid
    (CREDITS_OWED)."""

    def __init__(
        self, message: str, *, needed_credits: int, balance_credits: int, owed_credits: int = 0
    ) -> None:
        reason = Reason.CREDITS_OWED if owed_credits else Reason.INSUFFICIENT_CREDITS
        super().__init__(reason, message)
        self.needed_credits = needed_credits
        self.balance_credits = balance_credits
        self.owed_credits = owed_credits
