"""The one table from the domain's refusals (generation/refusals.py) to OpenAI's errors: status,
type, code and headers. A failed generation's stored outcome is answered from here too."""

from __future__ import annotations

from generation.models import Generation
from generation.refusals import Busy, RateLimited, Reason, Refusal

from .errors import NO_RETRY, ApiError

# reason -> (status, type, default code, headers)
_TABLE: dict[Reason, tuple[int, str, str, dict[str, str]]] = {
    Reason.MODEL_NOT_FOUND: (404, "invalid_request_error", "model_not_found", {}),
    Reason.MODEL_RETIRED: (410, "invalid_request_error", "model_retired", NO_RETRY),
    Reason.INVALID_VALUE: (400, "invalid_request_error", "invalid_value", {}),
    Reason.UNSUPPORTED_PARAMETER: (400, "invalid_request_error", "unsupported_parameter", {}),
    Reason.NOT_FOR_SALE: (503, "server_error", "model_not_priced", NO_RETRY),
    Reason.INSUFFICIENT_CREDITS: (402, "insufficient_quota", "insufficient_quota", {}),
    Reason.CREDITS_OWED: (402, "insufficient_quota", "insufficient_quota", {}),
    Reason.RATE_LIMITED: (429, "rate_limit_error", "rate_limit_requests", {}),
    Reason.IDEMPOTENCY_KEY_REUSED: (400, "invalid_request_error", "idempotency_key_reused", {}),
    Reason.BUSY: (503, "server_error", "server_busy", {}),
    Reason.JOB_FINISHED: (409, "invalid_request_error", "job_finished", NO_RETRY),
    # Retrying cannot help until the customer changes the key (or its window resets).
    Reason.KEY_BUDGET_EXCEEDED: (402, "insufficient_quota", "key_budget_exceeded", NO_RETRY),
    Reason.MODEL_NOT_ALLOWED: (403, "permission_error", "model_not_allowed", NO_RETRY),
}

# Headers that go with a failed generation's code, so that a stored error answers like the
# first time (and tells the SDKs whether a retry can help).
_STORED_ERROR_HEADERS = {
    "content_policy_violation": NO_RETRY,
    "service_unavailable": NO_RETRY,
    "model_not_priced": NO_RETRY,
    "upstream_busy": {"Retry-After": "5"},
}


def api_error(refusal: Refusal) -> ApiError:
    status, error_type, code, headers = _TABLE[refusal.reason]
    # A refusal for credits says what it costs and where to add them (the billing page's
    # address) in the domain's own message, the one a stored failure answers with too.
    message = refusal.message
    headers = dict(headers)
    if isinstance(refusal, RateLimited):
        headers.update(refusal.limit_headers)
        headers.update(
            {
                "Retry-After": str(refusal.retry_after_seconds),
                "retry-after-ms": str(refusal.retry_after_ms),
                "x-ratelimit-tier": refusal.tier_id,
            }
        )
        if refusal.hopeless:
            # Retrying cannot help: the SDKs must not.
            headers.update(NO_RETRY)
    if isinstance(refusal, Busy):
        # The OpenAI SDKs retry a 503 after Retry-After (up to 60 s).
        headers["Retry-After"] = str(refusal.retry_after_seconds)
    return ApiError(
        status,
        message,
        type=error_type,
        code=refusal.code or code,
        param=refusal.param,
        headers=headers,
    )


def stored_error(generation: Generation) -> ApiError:
    """The error a finished, failed generation answers with."""
    status = generation.http_status or 500
    if status == 402:
        error_type = "insufficient_quota"
    elif status == 403:
        error_type = "permission_error"
    elif status >= 500:
        error_type = "server_error"
    else:
        error_type = "invalid_request_error"
    return ApiError(
        status,
        generation.error_message or "The generation failed.",
        type=error_type,
        code=generation.error_code or None,
        param=generation.error_param or None,
        headers=_STORED_ERROR_HEADERS.get(generation.error_code),
    )
