"""The request's rules (generation/spec.py) and the refusals the domain raises, as the API maps
them (api/refusals.py): one table, every reason in it."""

from __future__ import annotations

import pytest

from api.refusals import api_error
from generation.refusals import RateLimited, Reason, Refusal, ShortOfCredits
from generation.spec import IMAGES_MAX, SEED_MAX, build_spec

pytestmark = pytest.mark.smoke

GOOD = {"model": "seedream-4-0", "prompt": "a fox", "size": "1024x1024"}


@pytest.mark.parametrize(
    ("change", "reason", "param", "code"),
    [
        ({"prompt": "  "}, Reason.INVALID_VALUE, "prompt", "invalid_value"),
        ({"prompt": "x" * 100_000}, Reason.INVALID_VALUE, "prompt", "string_above_max_length"),
        ({"n": 0}, Reason.INVALID_VALUE, "n", "invalid_value"),
        ({"n": IMAGES_MAX + 1}, Reason.INVALID_VALUE, "n", "invalid_value"),
        ({"seed": SEED_MAX + 1}, Reason.INVALID_VALUE, "seed", "invalid_value"),
        ({"seed": -2}, Reason.INVALID_VALUE, "seed", "invalid_value"),
        ({"model": "seedream-9-9"}, Reason.MODEL_NOT_FOUND, "model", None),
        ({"size": "12x12"}, Reason.INVALID_VALUE, "size", "invalid_value"),
        ({"guidance_scale": 11.0, "model": "seedream-3-0"}, Reason.INVALID_VALUE,
         "guidance_scale", "invalid_value"),
        ({"guidance_scale": 5.0}, Reason.UNSUPPORTED_PARAMETER, "guidance_scale",
         "unsupported_parameter"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_refused_naming_its_input(change, reason, param, code):
    with pytest.raises(Refusal) as refused:
        build_spec(**{**GOOD, **change})

    assert (refused.value.reason, refused.value.param, refused.value.code) == (reason, param, code)
    assert refused.value.message


def test_a_good_request_becomes_a_spec():
    spec = build_spec(**GOOD, n=3, seed=7, watermark=True, end_user="u1")

    assert (spec.model.id, spec.size.value, spec.n) == ("seedream-4-0", "1024x1024", 3)
    assert spec.params() == {"watermark": True, "seed": 7, "user": "u1"}


def test_every_reason_has_its_openai_status():
    expected = {
        Reason.MODEL_NOT_FOUND: 404,
        Reason.MODEL_RETIRED: 410,
        Reason.INVALID_VALUE: 400,
        Reason.UNSUPPORTED_PARAMETER: 400,
        Reason.NOT_FOR_SALE: 503,
        Reason.INSUFFICIENT_CREDITS: 402,
        Reason.CREDITS_OWED: 402,
        Reason.RATE_LIMITED: 429,
        Reason.IDEMPOTENCY_KEY_REUSED: 400,
        Reason.BUSY: 503,
        Reason.JOB_FINISHED: 409,
        Reason.KEY_BUDGET_EXCEEDED: 402,
        Reason.MODEL_NOT_ALLOWED: 403,
    }
    assert set(expected) == set(Reason)
    for reason, status in expected.items():
        assert api_error(Refusal(reason, "why")).status == status


def test_short_of_credits_answers_402_with_the_domains_message():
    error = api_error(ShortOfCredits("Insufficient credits: ...", needed_credits=80,
                                     balance_credits=30))  # fmt: skip

    assert (error.status, error.type, error.code) == (
        402,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert error.message == "Insufficient credits: ..."


def test_credits_owed_keeps_the_domains_explanation():
    error = api_error(
        ShortOfCredits("Your account owes 5 credits", needed_credits=40, balance_credits=0,
                       owed_credits=5)
    )  # fmt: skip

    assert (error.status, error.message) == (402, "Your account owes 5 credits")


@pytest.mark.parametrize("hopeless", [False, True])
def test_a_rate_limit_carries_its_figures_as_headers(hopeless):
    limits = {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "0"}
    error = api_error(
        RateLimited("slow down", kind="images", retry_after_seconds=7, retry_after_ms=6500,
                    tier_id="free", limit_headers=limits, hopeless=hopeless)
    )  # fmt: skip

    assert (error.status, error.type, error.code) == (429, "rate_limit_error", "rate_limit_images")
    assert error.headers["Retry-After"] == "7"
    assert error.headers["retry-after-ms"] == "6500"
    assert error.headers["x-ratelimit-tier"] == "free"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert ("x-should-retry" in error.headers) is hopeless
