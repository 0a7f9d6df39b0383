"""The OpenAPI 3.1 description of /v1, served at ``GET /v1/openapi.json`` without a key.

Built from the code wherever the code says it, so that it cannot drift: the JSON bodies are the
pydantic request models' own schemas (api/schemas.py, the ``async`` alias included), the
multipart edit form is those fields typed as api/multipart.py types them, and the bounds,
choices, models and job statuses are the domain's constants, read when the document is built
(never at import time: settings and the catalog can change). What only prose says (each
operation's statuses, headers and answers) is written here once, from the views; the tests
(tests/api/test_openapi.py) fail when a /v1 route or method is missing here or described here
without existing, and tests/integration/test_openapi_fuzz.py sends the document's requests to
a real server and checks each answer against it.

Paths are relative to the server ``{site}/v1``, as the OpenAI SDKs' ``base_url`` is.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.csrf import csrf_exempt

from generation import catalog, usage
from generation.services import jobs
from generation.spec import BACKGROUNDS, OUTPUT_FORMATS, QUALITIES, SET_TOTAL_MAX
from server.steps import Steps

from . import multipart, streaming
from . import usage as usage_api
from .answers import CREDITS_CHARGED_HEADER, base_url
from .errors import error_response
from .schemas import ImageEditRequest, ImageGenerationRequest

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"

JSON = "application/json"
FORM = "multipart/form-data"
EVENTS = "text/event-stream"

# Every error status a /v1 operation can answer, with what it means (the code names which case).
ERRORS: dict[int, str] = {
    400: "The request is invalid: a parameter's type or value (named in `param`), a reused "
    "`Idempotency-Key` with another body, or a refused image.",
    401: "No API key, or a wrong, revoked or expired one (`invalid_api_key`).",
    402: "Not enough credits for the most the request can cost, or credits owed "
    "(`insufficient_quota`), or the key's spend cap would be passed (`key_budget_exceeded`): "
    "nothing was charged.",
    403: "The key may not be used from this address (`ip_not_allowed`) or for this model "
    "(`model_not_allowed`): its spend controls, on its page in the dashboard.",
    404: "No such model (`model_not_found`) or job (`not_found`) for this key's account.",
    408: "The request body did not arrive in time (`request_timeout`).",
    409: "The same `Idempotency-Key` is still running (`idempotency_request_in_progress`, "
    "with `Location` of its job), or the job has finished (`job_finished`).",
    410: "The model is retired (`model_retired`).",
    413: "The request body is larger than this path allows (`request_too_large`).",
    415: "The body is not JSON (or, where allowed, multipart/form-data) "
    "(`unsupported_media_type`).",
    429: "A rate limit (`rate_limit_requests`, `rate_limit_images`, `rate_limit_concurrent`) "
    "or too many wrong keys from one address (`too_many_invalid_keys`); `Retry-After` says "
    "when to retry.",
    502: "The image service failed to generate the images (`upstream_error`); nothing was "
    "charged for what was not delivered.",
    503: "Busy (`server_busy`, `upstream_busy`, with `Retry-After`), the image service timed out "
    "or is unavailable (`upstream_timeout`, `service_unavailable`), an image could not be "
    "stored (`storage_error`), or the model has no price (`model_not_priced`).",
}

# The statuses of each kind of operation (read from the views: api/auth.py's decorator gives
# every authenticated one 401 and 429, a POST's body 408 and 413).
_AUTHENTICATED = (401, 403, 429)
_BODY = (400, 408, 413, 415)
_RUNS_IMAGES = (*_BODY, *_AUTHENTICATED, 402, 404, 409, 410, 502, 503)
_QUOTE = (*_BODY, *_AUTHENTICATED, 404, 410, 503)


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


def _headers() -> dict[str, Any]:
    headers = {
        "RequestId": _header(
            "This request's id (`req_…`): quote it to support. A generation it asks for is "
            "the job `gen_…` with the same hex.",
            {"type": "string", "pattern": "^req_[0-9a-f]{32}$"},
        ),
        "CreditsCharged": _header(
            "Credits charged for this answer (0 for an error); a stream says it in its events.",
            {"type": "string", "pattern": "^[0-9]+$"},
        ),
        "RetryAfter": _header(
            "Seconds to wait before retrying.", {"type": "string", "pattern": "^[0-9]+$"}
        ),
        "IdempotentReplayed": _header(
            "`true`: the stored answer of an earlier request with this `Idempotency-Key`.",
            {"type": "string", "enum": ["true"]},
        ),
        "Location": _header("The job to poll: `/v1/images/generations/{id}`."),
        "Deprecation": _header(
            "On a deprecated model's answers (RFC 9745): `@<unix time>` since when, or `?1`."
        ),
        "Sunset": _header("When a deprecated model is retired (RFC 8594), an HTTP date."),
        "Link": _header("The docs on the deprecation, and the model to move to."),
        "ShouldRetry": _header(
            "`false`: retrying cannot help (the OpenAI SDKs honour it).",
            {"type": "string", "enum": ["false"]},
        ),
        "KeyBudgetLimit": _header(
            "A capped key's spend cap in credits (its period is set on the key's page).",
            {"type": "string", "pattern": "^[0-9]+$"},
        ),
        "KeyBudgetRemaining": _header(
            "What is left of the cap in its current window, held credits of running "
            "requests counted as spent.",
            {"type": "string", "pattern": "^[0-9]+$"},
        ),
        "KeyBudgetReset": _header(
            "When the cap's window turns over (UTC, ISO 8601); absent for a cap in total."
        ),
    }
    for kind in ("requests", "images"):
        headers[f"RateLimitLimit{kind.title()}"] = _header(
            f"The tightest {kind}-per-minute limit of this key and its account.",
            {"type": "string", "pattern": "^[0-9]+$"},
        )
        headers[f"RateLimitRemaining{kind.title()}"] = _header(
            "What is left of it in this window.", {"type": "string", "pattern": "^[0-9]+$"}
        )
        headers[f"RateLimitReset{kind.title()}"] = _header(
            "When the window turns over, as a Go duration (`59ms`, `12s`, `1m0s`)."
        )
    return headers


def _h(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


# On every authenticated answer (an error's too, once the key is known).
_RATE_HEADERS = {
    f"x-ratelimit-{part}-{kind}": _h(f"RateLimit{part.title()}{kind.title()}")
    for part in ("limit", "remaining", "reset")
    for kind in ("requests", "images")
}
_LIFECYCLE_HEADERS = {"Deprecation": _h("Deprecation"), "Sunset": _h("Sunset"), "Link": _h("Link")}
# On every answer to a key with a spend cap.
_BUDGET_HEADERS = {
    f"x-key-budget-{part}": _h(f"KeyBudget{part.title()}")
    for part in ("limit", "remaining", "reset")
}


def _answer_headers(*extra: str) -> dict[str, Any]:
    headers = {"x-request-id": _h("RequestId"), **_RATE_HEADERS, **_BUDGET_HEADERS}
    names = {
        "charged": {CREDITS_CHARGED_HEADER: _h("CreditsCharged")},
        "replayed": {"Idempotent-Replayed": _h("IdempotentReplayed")},
        "lifecycle": _LIFECYCLE_HEADERS,
        "job": {"Location": _h("Location"), "Retry-After": _h("RetryAfter")},
    }
    for name in extra:
        headers.update(names[name])
    return headers


def _error_responses() -> dict[str, Any]:
    responses = {}
    for status, description in ERRORS.items():
        headers: dict[str, Any] = {
            "x-request-id": _h("RequestId"),
            **_RATE_HEADERS,
            **_BUDGET_HEADERS,
        }
        if status in (409, 429, 503):
            headers["Retry-After"] = _h("RetryAfter")
        if status in (402, 403, 409, 410, 429, 503):
            headers["x-should-retry"] = _h("ShouldRetry")
        if status == 409:
            headers["Location"] = _h("Location")
        if status in (400, 404, 410, 503):
            headers.update(_LIFECYCLE_HEADERS)
        responses[f"Error{status}"] = {
            "description": description,
            "headers": headers,
            "content": {JSON: {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
        }
    return responses


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/Error{s}"} for s in sorted(set(statuses))}


def _ok(description: str, schema: str, *headers: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _answer_headers(*headers),
        "content": {JSON: {"schema": {"$ref": REF.format(model=schema)}}},
    }


# --- Schemas -------------------------------------------------------------------------------------


def _request_schema(model: type[ImageGenerationRequest], schemas: dict[str, Any]) -> Any:
    """The pydantic model's JSON schema (by alias: ``async``), its $defs moved to the
    components, with the domain's choices and bounds that the model leaves to generation/spec.py
    (which refuses the same values with a 400)."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    properties = schema["properties"]
    usable = [m for m in catalog.all_models() if m.lifecycle() != catalog.RETIRED]
    properties["model"] = {
        **properties["model"],
        "description": "A model's id or alias (GET /models lists them).",
        "anyOf": [
            {"type": "string", "enum": sorted({n for m in usable for n in (m.id, *m.aliases)})},
            {"type": "string"},
        ],
    }
    properties["prompt"].update(
        {
            "minLength": 1,
            "maxLength": settings.PROMPT_MAX_CHARS,
            "pattern": r"\S",
            "description": "What to make (not blank). Optional with `layer_decomposition`.",
        }
    )
    _choices(properties, "quality", QUALITIES)
    _choices(properties, "output_format", OUTPUT_FORMATS)
    _choices(properties, "background", BACKGROUNDS)
    _choices(properties, "sequential_image_generation", ("auto", "disabled"))
    properties["size"]["description"] = (
        "`WIDTHxHEIGHT` within the model's rules, one of its keywords (`2K`…), or `auto`."
    )
    properties["async"]["description"] = (
        "`true`: answer 202 with a job at once, as `Prefer: respond-async` does."
    )
    properties["stream"]["description"] = (
        "`true`: the answer is Server-Sent Events (`text/event-stream`)."
    )
    for ignored in ("style", "moderation", "partial_images", "input_fidelity"):
        if ignored in properties:
            properties[ignored]["description"] = "Accepted and ignored (OpenAI's)."
    if "mask" in properties:
        properties["mask"]["description"] = (
            "Refused (`unsupported_parameter`): edits are by prompt."
        )
    return schema


def _choices(properties: dict[str, Any], name: str, values: tuple[str, ...]) -> None:
    properties[name]["anyOf"] = [{"type": "string", "enum": list(values)}, {"type": "null"}]


def _form_schema(edit: dict[str, Any]) -> dict[str, Any]:
    """The multipart edit: each JSON field as a form field, typed as api/multipart.py converts
    its text, and the images as files."""
    properties: dict[str, Any] = {}
    for name, field in edit["properties"].items():
        if name in ("images", "image", "mask", "sequential_image_generation_options"):
            continue
        if name in multipart._INTEGERS:
            kind = "integer"
        elif name in multipart._NUMBERS:
            kind = "number"
        elif name in multipart._BOOLEANS:
            kind = "boolean"
        else:
            kind = "string"
        properties[name] = _scalar(field, kind)
    properties["sequential_image_generation_options[max_images]"] = {
        "type": "integer",
        "minimum": 1,
        "maximum": SET_TOTAL_MAX,
    }
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    properties["image"] = {
        **binary,
        "description": "One image (PNG, JPEG, WebP…). For several, send `image[]` "
        "(as the SDKs do for a list) or `image[0]`, `image[1]`…",
    }
    properties["image[]"] = {"type": "array", "items": binary, "minItems": 1}
    properties["mask"] = {**binary, "description": "Refused (`unsupported_parameter`)."}
    return {"type": "object", "required": ["model", "prompt"], "properties": properties}


def _scalar(field: dict[str, Any], kind: str) -> dict[str, Any]:
    """A JSON property as a form field of one type: its null branch dropped (a form field is
    sent or not), its bounds and choices kept."""
    out = {k: v for k, v in field.items() if k not in ("anyOf", "default", "title")}
    branches = [b for b in field.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        out.update(branches[0])
    elif branches:
        out["anyOf"] = branches
    if kind != "string" or "type" not in out:
        out["type"] = kind
    return out


_INT = {"type": "integer"}
_STR = {"type": "string"}
_USD = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{4}$", "description": "US dollars."}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _answer_schemas() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"]}
    error = _object(
        {
            "message": _STR,
            "type": _STR,
            "code": {"type": ["string", "null"]},
            "param": {"type": ["string", "null"]},
        }
    )
    usage = _object(
        {
            "input_tokens": _INT,
            "input_tokens_details": _object({"image_tokens": _INT, "text_tokens": _INT}),
            "output_tokens": _INT,
            "total_tokens": _INT,
        },
        {"generated_images": _INT, "input_images": _INT, "credits": _INT},
    )
    image = _object(
        {},
        {
            "url": {"type": "string", "format": "uri"},
            "b64_json": {"type": "string", "contentEncoding": "base64"},
            "revised_prompt": {"type": "null"},
            "z_index": _INT,
            "name": _STR,
            "description": _STR,
            "bounding_box": {},
        },
    )
    image_fields = {
        "created": _INT,
        "id": _STR,
        "model": _STR,
        "images_requested": _INT,
        "images_delivered": _INT,
        "credits_charged": _INT,
        "usage": {"$ref": REF.format(model="Usage")},
    }
    images_response = _object(
        {"data": {"type": "array", "items": {"$ref": REF.format(model="Image")}}, **image_fields},
        {
            "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
            "size": _STR,
            "background": _STR,
        },
    )
    job = _object(
        {
            "id": _STR,
            "object": {"const": "image.generation"},
            "status": {"type": "string", "enum": list(jobs.JOB_STATUSES)},
            "model": _STR,
            "created": _INT,
            "finished_at": nullable_int,
            "images_requested": _INT,
            "images_delivered": _INT,
            "quote": _object({"credits": _INT, "usd": _USD}),
        },
        {
            "credits_charged": _INT,
            "data": {"type": "array", "items": {"$ref": REF.format(model="Image")}},
            "usage": {"$ref": REF.format(model="Usage")},
            "error": {"$ref": REF.format(model="Error")},
            "output_format": _STR,
            "size": _STR,
            "background": _STR,
        },
    )
    job["description"] = (
        "A generation as a job. While `queued` or `in_progress`: `data` is empty (202). Once "
        "finished: `completed` has the images as a synchronous answer would, `failed` its "
        "`error`, `cancelled` what was delivered before it stopped (and charged)."
    )
    model = _object(
        {
            "id": _STR,
            "object": {"const": "model"},
            "created": _INT,
            "owned_by": _STR,
            "name": _STR,
            "price_per_image_credits": nullable_int,
            "price_per_image_usd": {"type": ["string", "null"]},
            "status": {
                "type": "string",
                "enum": [catalog.ACTIVE, catalog.DEPRECATED, catalog.RETIRED],
            },
        },
        {
            "price_per_image_credits_by_size_tier": {
                "type": "object",
                "additionalProperties": _INT,
            },
            "pricing": {"type": ["object", "null"]},
            "default_size": _STR,
            "size_keywords": {"type": "array", "items": _STR},
            "min_pixels": _INT,
            "max_pixels": _INT,
            "max_aspect_ratio": {"type": "number"},
            "supports_seed": {"type": "boolean"},
            "supports_guidance_scale": {"type": "boolean"},
            "sunset": {"type": ["string", "null"], "format": "date"},
            "replacement": {"type": ["string", "null"]},
            "aliases": {"type": "array", "items": _STR},
            "upstream_ids": {"type": "array", "items": _STR},
            "modes": {"type": "array", "items": {"type": "string", "enum": list(catalog.MODES)}},
            "sizes": {"type": "object"},
            "limits": {"type": "object"},
        },
    )
    quote = _object(
        {
            "object": {"const": "image.quote"},
            "model": _STR,
            "credits": _INT,
            "usd": _USD,
            "images": {
                "type": "array",
                "items": _object({"size": _STR, "max_pixels": _INT, "tier": _STR, "credits": _INT}),
            },
            "inputs": {"type": "array", "items": _object({"credits": _INT})},
        }
    )
    quote["description"] = "The most a request can cost (what it holds), image by image."
    return {
        "Error": error,
        "ErrorResponse": _object({"error": {"$ref": REF.format(model="Error")}}),
        "Usage": usage,
        "Image": image,
        "ImagesResponse": images_response,
        "ImageEvent": {
            "type": "object",
            "description": "One frame of a stream: `event: image_generation.completed` (or "
            "`image_edit.completed`) per image with the image fields and `b64_json`, "
            "`: keep-alive` comments while they are made, then `data: [DONE]`; a failure ends "
            "it with `event: error` and an ErrorResponse as its data.",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": [f"{streaming.GENERATION}.completed", f"{streaming.EDIT}.completed"],
                },
                "b64_json": _STR,
                "url": _STR,
                "index": _INT,
                "id": _STR,
                "credits_charged": _INT,
                "usage": {"$ref": REF.format(model="Usage")},
            },
        },
        "Job": job,
        "JobList": _object(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"$ref": REF.format(model="Job")}},
                "first_id": {"type": ["string", "null"]},
                "last_id": {"type": ["string", "null"]},
                "has_more": {"type": "boolean"},
            }
        ),
        "Model": model,
        "ModelList": _object(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"$ref": REF.format(model="Model")}},
            }
        ),
        "Quote": quote,
        "CreditBalance": _object(
            {
                "object": {"const": "credit_balance"},
                "balance": {"type": "integer", "minimum": 0},
                "balance_usd": _USD,
                "currency": {"const": "usd"},
                "credits_per_usd": _INT,
            }
        ),
        **_usage_schemas(),
    }


def _usage_schemas() -> dict[str, Any]:
    """OpenAI's usage page of image buckets (``results``, as its API answers), with credits."""
    count = {"type": "integer", "minimum": 0}
    nullable = {"type": ["string", "null"]}
    result = _object(
        {
            "object": {"const": usage_api.RESULT_OBJECT},
            "images": {**count, "description": "Images delivered."},
            "num_model_requests": {
                **count,
                "description": "Requests accepted (credits held), whatever their outcome: "
                "failed, blocked and cancelled ones count, charged 0.",
            },
            "credits": {**count, "description": "Credits charged (the ledger's charge lines)."},
            "model": nullable,
            "api_key_id": {
                **nullable,
                "description": "The key's usage id (`key_…`); null for the playground.",
            },
            "api_key_name": nullable,
            "size": nullable,
            "source": {"type": ["string", "null"], "enum": [*usage.SOURCES, None]},
        }
    )
    result["description"] = "One group's figures in a bucket; a field not in `group_by` is null."
    bucket = _object(
        {
            "object": {"const": usage_api.BUCKET_OBJECT},
            "start_time": _INT,
            "end_time": _INT,
            "results": {"type": "array", "items": {"$ref": REF.format(model="UsageImagesResult")}},
        }
    )
    bucket["description"] = (
        "`[start_time, end_time)`, Unix seconds: a whole UTC minute, hour or day, but where "
        "the window cuts it. `results` is empty when nothing was settled in it."
    )
    page = _object(
        {
            "object": {"const": "page"},
            "data": {"type": "array", "items": {"$ref": REF.format(model="UsageBucket")}},
            "has_more": {"type": "boolean"},
            "next_page": {"type": ["string", "null"]},
        }
    )
    return {"UsageImagesResult": result, "UsageBucket": bucket, "UsagePage": page}


# --- Operations ----------------------------------------------------------------------------------


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "A repeat with the same key and body answers the first request's "
            "result (`Idempotent-Replayed: true`) and is charged once; the same key with "
            "another body is a 400.",
            "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
        },
        "Prefer": {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": "`respond-async`: answer 202 with a job at once (RFC 7240); other "
            "preferences are ignored.",
            "schema": {"type": "string", "examples": ["respond-async"]},
        },
        "JobId": {
            "name": "generation_id",
            "in": "path",
            "required": True,
            "description": "The job's id (`gen_…`), or the `x-request-id` of the request that "
            "asked for it. Another account's reads as unknown (404).",
            "schema": {"type": "string", "minLength": 1},
        },
    }


def _usage_parameters() -> list[dict[str, Any]]:
    """The usage query's parameters; every array also as ``name[]``, as the SDKs send it."""
    time = {"type": "integer", "minimum": 0, "maximum": usage.MAX_TIME}
    value = {"type": "string", "pattern": usage_api.VALUE_RE.pattern}
    most_buckets = max(most for _, most in usage.BUCKET_LIMITS.values())
    limits = "; ".join(
        f"`{width}`: {default} by default, at most {most}"
        for width, (default, most) in usage.BUCKET_LIMITS.items()
    )
    parameters: list[dict[str, Any]] = [
        {
            "name": "start_time",
            "in": "query",
            "required": True,
            "description": "Start of the window, Unix seconds, inclusive.",
            "schema": time,
        },
        {
            "name": "end_time",
            "in": "query",
            "description": "End of the window, Unix seconds, exclusive; after `start_time`. "
            "Without it, the end of the current bucket.",
            "schema": time,
        },
        {
            "name": "bucket_width",
            "in": "query",
            "schema": {"type": "string", "enum": list(usage.BUCKET_WIDTHS), "default": "1d"},
        },
        {
            "name": "limit",
            "in": "query",
            "description": f"Buckets per page: {limits}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": most_buckets},
        },
        {
            "name": "page",
            "in": "query",
            "description": "The `next_page` of the previous page (same `start_time` and "
            "`bucket_width`).",
            "schema": {"type": "string", "pattern": usage_api.PAGE_RE.pattern},
        },
    ]
    arrays = {
        "group_by": (
            {"type": "string", "enum": list(usage.GROUP_FIELDS)},
            usage_api.GROUP_BY_MAX_VALUES,
            "Group each bucket's results by these fields.",
        ),
        "models": (value, usage_api.MAX_VALUES, "Only these models."),
        "api_key_ids": (value, usage_api.MAX_VALUES, "Only these keys (`key_…`)."),
        "sizes": (value, usage_api.MAX_VALUES, "Only these sizes, as asked (`2K`, `1024x1024`)."),
        "sources": (
            {"type": "string", "enum": list(usage.SOURCES)},
            usage_api.MAX_VALUES,
            "Only requests from here: `api` or `playground`.",
        ),
    }
    for name, (items, most, description) in arrays.items():
        for spelled in (name, f"{name}[]"):
            parameters.append(
                {
                    "name": spelled,
                    "in": "query",
                    "description": description,
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "array", "items": items, "maxItems": most},
                }
            )
    return parameters


def _images_operation(
    operation_id: str, summary: str, body: dict[str, Any], event: str
) -> dict[str, Any]:
    ok = _ok(
        "The images (or, with `stream: true`, Server-Sent Events). `x-credits-charged` says "
        "what was charged: only what was delivered.",
        "ImagesResponse",
        "charged",
        "replayed",
        "lifecycle",
    )
    # One Server-Sent Event (what a client's SSE parser yields): an image's event, the error
    # a failed generation ends with, or the closing `[DONE]`; `: keep-alive` comments are none.
    ok["content"][EVENTS] = {
        "schema": {
            "description": f"`{event}.completed` events (each an ImageEvent), then `[DONE]`; "
            "a generation that fails ends with `event: error` (an ErrorResponse).",
            "anyOf": [
                {
                    "type": "object",
                    "required": ["data"],
                    # No event name: an SSE parser names it "message", as the spec says.
                    "properties": {"event": {"const": "message"}, "data": {"const": "[DONE]"}},
                },
                {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": [f"{event}.completed", "error"]},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {
                                "anyOf": [
                                    {"$ref": REF.format(model="ImageEvent")},
                                    {"$ref": REF.format(model="ErrorResponse")},
                                ]
                            },
                        },
                    },
                },
            ],
        }
    }
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["Images"],
        "parameters": [
            {"$ref": "#/components/parameters/IdempotencyKey"},
            {"$ref": "#/components/parameters/Prefer"},
        ],
        "requestBody": {"required": True, "content": body},
        "responses": {
            "200": ok,
            "202": _ok(
                'Queued as a job (`Prefer: respond-async` or `"async": true`): poll its '
                "`Location`. Its credits are held until it finishes.",
                "Job",
                "job",
                "replayed",
                "lifecycle",
            ),
            **_errors(*_RUNS_IMAGES),
        },
    }


def _job_answers(description: str) -> dict[str, Any]:
    return {
        "200": _ok(f"{description} finished: its images, or its `error`.", "Job", "charged"),
        "202": _ok(f"{description} still queued or in progress.", "Job", "job"),
    }


def _operations() -> dict[str, Any]:
    example = {"model": "seedream-4-0", "prompt": "a red fox in snow", "size": "1024x1024"}
    json_body = {
        "schema": {"$ref": REF.format(model="ImageGenerationRequest")},
        "example": example,
    }
    edit_json = {
        "schema": {"$ref": REF.format(model="ImageEditRequest")},
        "example": {
            **example,
            "prompt": "the fox from the picture, at night",
            "images": [{"image_url": "https://example.com/fox.png"}],
        },
    }
    edit_form = {
        "schema": {"$ref": REF.format(model="ImageEditForm")},
        "encoding": {"image": {"contentType": "image/*"}, "image[]": {"contentType": "image/*"}},
    }
    return {
        "/images/generations": {
            "post": _images_operation(
                "createImage",
                "Images from a prompt (and Seedream's reference `image`)",
                {JSON: json_body},
                streaming.GENERATION,
            ),
            "get": {
                "operationId": "listImageGenerations",
                "summary": "The account's generations as jobs, newest first",
                "tags": ["Jobs"],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": jobs.LIST_LIMIT_MAX,
                            "default": jobs.LIST_LIMIT_DEFAULT,
                        },
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "description": "The last id of the previous page.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(jobs.JOB_STATUSES)},
                    },
                ],
                "responses": {
                    "200": _ok("A page of jobs (without their images).", "JobList"),
                    **_errors(400, *_AUTHENTICATED),
                },
            },
        },
        "/images/generations/{generation_id}": {
            "parameters": [{"$ref": "#/components/parameters/JobId"}],
            "get": {
                "operationId": "retrieveImageGeneration",
                "summary": "A generation as a job (synchronous ones too)",
                "tags": ["Jobs"],
                "responses": {**_job_answers("The job"), **_errors(404, *_AUTHENTICATED)},
            },
        },
        "/images/generations/{generation_id}/cancel": {
            "parameters": [{"$ref": "#/components/parameters/JobId"}],
            "post": {
                "operationId": "cancelImageGeneration",
                "summary": "Cancel a queued or running job",
                "tags": ["Jobs"],
                "description": "A queued job's hold is released at once; a running one stops "
                "when the image service answers (what it delivered is charged).",
                "responses": {
                    **_job_answers("The cancelled job"),
                    **_errors(404, 409, 408, 413, *_AUTHENTICATED),
                },
            },
        },
        "/images/edits": {
            "post": _images_operation(
                "createImageEdit",
                "Images from reference images and a prompt",
                {FORM: edit_form, JSON: edit_json},
                streaming.EDIT,
            )
        },
        "/images/quote": {
            "post": {
                "operationId": "quoteImages",
                "summary": "What a generation or an edit with this body would hold",
                "tags": ["Images"],
                "description": "Parsed and refused exactly as the generation (or, multipart or "
                "with `images`, the edit) would be; nothing is charged or generated.",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "anyOf": [
                                    {"$ref": REF.format(model="ImageGenerationRequest")},
                                    {"$ref": REF.format(model="ImageEditRequest")},
                                ]
                            },
                            "example": {**example, "n": 2, "size": "4K"},
                        },
                        FORM: edit_form,
                    },
                },
                "responses": {
                    "200": _ok("The quote.", "Quote", "lifecycle"),
                    **_errors(*_QUOTE),
                },
            }
        },
        "/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models, with prices and size rules",
                "tags": ["Models"],
                "responses": {"200": _ok("The models.", "ModelList"), **_errors(*_AUTHENTICATED)},
            }
        },
        "/models/{model}": {
            "get": {
                "operationId": "retrieveModel",
                "summary": "One model",
                "tags": ["Models"],
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _ok("The model.", "Model", "lifecycle"),
                    **_errors(404, *_AUTHENTICATED),
                },
            }
        },
        "/credits": {
            "get": {
                "operationId": "retrieveCredits",
                "summary": "The account's credit balance",
                "tags": ["Credits"],
                "responses": {
                    "200": _ok("The balance.", "CreditBalance"),
                    **_errors(*_AUTHENTICATED),
                },
            }
        },
        "/usage/images": {
            "get": {
                "operationId": "usageImages",
                "summary": "The account's image usage in time buckets, with credits",
                "tags": ["Usage"],
                "description": "As OpenAI's `GET /organization/usage/images`, for the key's "
                "account. Buckets are UTC; a request counts in the bucket it was settled "
                "(charged) in, so a window's credits are its ledger's charges. Empty buckets "
                "are listed, with no results.",
                "parameters": _usage_parameters(),
                "responses": {
                    "200": _ok("A page of buckets.", "UsagePage"),
                    **_errors(400, *_AUTHENTICATED),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document",
                "tags": ["Meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document (no key needed).",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
                },
            }
        },
    }


def document(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is the site's address (``https://host``)."""
    schemas: dict[str, Any] = {}
    generation = _request_schema(ImageGenerationRequest, schemas)
    edit = _request_schema(ImageEditRequest, schemas)
    edit["properties"]["images"]["description"] = (
        'OpenAI\'s JSON form: `[{"image_url": "https://…" or a data URL}]`.'
    )
    form = _form_schema(copy.deepcopy(edit))
    schemas.update(
        {
            "ImageGenerationRequest": generation,
            "ImageEditRequest": edit,
            "ImageEditForm": form,
            **_answer_schemas(),
        }
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Seedream API",
            "version": "1",
            "summary": "ByteDance's Seedream image models behind OpenAI's images API.",
            "description": "OpenAI-compatible: the official SDKs work with `base_url` set to "
            "this server. Prices are in credits, held before a generation and charged only "
            'for what is delivered. Every error is `{"error": {message, type, code, '
            "param}}`. The prose docs: /docs/.",
        },
        "servers": [{"url": f"{server_url}/v1"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("Images", "Jobs", "Models", "Credits", "Usage", "Meta")],
        "paths": _operations(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from the dashboard: `sk-seedream-…`.",
                }
            },
            "schemas": schemas,
            "parameters": _parameters(),
            "headers": _headers(),
            "responses": _error_responses(),
        },
    }


@csrf_exempt
async def openapi_json(request: HttpRequest) -> HttpResponse:
    """The document, public (no key: code generators and viewers fetch it), cacheable for a few
    minutes and revalidated by its ETag (the catalog and settings it is built from can change)."""
    if request.method not in ("GET", "HEAD"):
        return error_response(
            405,
            f"{request.method} is not allowed here; use GET.",
            code="method_not_allowed",
            headers={"Allow": "GET, HEAD"},
        )
    if catalog.overrides_due():  # the admin's catalog changes: the models' enum follows
        await Steps.for_request().run(catalog.refresh)
    body = json.dumps(document(base_url(request)), separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type=JSON)
    for name, value in headers.items():
        response[name] = value
    return response
