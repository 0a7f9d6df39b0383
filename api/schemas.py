"""The request body of POST /v1/images/generations, validated strictly.

Strict types: ``"n": "2"`` or ``"n": 2.0`` is an error, as a typed client would expect. Unknown
fields are ignored, and the OpenAI fields that do not apply to Seedream are accepted and ignored.
``quality``, ``output_format``, ``output_compression`` and ``background`` are OpenAI's and mean
what they mean there (generation/spec.py checks their values, for every way in).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from generation.spec import (
    COMPRESSION_MAX,
    COMPRESSION_MIN,
    GUIDANCE_SCALE_MAX,
    GUIDANCE_SCALE_MIN,
    IMAGES_MAX,
    SEED_MAX,
    GenerationSpec,
    build_spec,
)

from .errors import ApiError, invalid


class ImageGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: StrictStr = Field(min_length=1, max_length=64)
    prompt: StrictStr
    n: StrictInt = Field(default=1, ge=1, le=IMAGES_MAX)
    size: StrictStr | None = Field(default=None, max_length=16)
    response_format: Literal["url", "b64_json"] | None = None
    user: StrictStr | None = Field(default=None, max_length=256)
    stream: StrictBool | None = None
    # Seedream extras, sent by clients through `extra_body`.
    seed: StrictInt | None = Field(default=None, ge=-1, le=SEED_MAX)
    guidance_scale: float | None = Field(default=None, ge=GUIDANCE_SCALE_MIN, le=GUIDANCE_SCALE_MAX)
    watermark: StrictBool = False
    # OpenAI's: a resolution tier of the model, the format delivered, its compression, and a
    # transparent background where the model can make one.
    quality: StrictStr | None = Field(default=None, max_length=16)
    output_format: StrictStr | None = Field(default=None, max_length=16)
    output_compression: StrictInt | None = Field(
        default=None, ge=COMPRESSION_MIN, le=COMPRESSION_MAX
    )
    background: StrictStr | None = Field(default=None, max_length=16)
    # Accepted and ignored (OpenAI fields with no Seedream meaning).
    style: Any = None
    moderation: Any = None
    partial_images: Any = None


_MESSAGES = {
    "missing": "Missing required parameter: '{param}'.",
    "string_type": "Invalid type for '{param}': expected a string.",
    "int_type": "Invalid type for '{param}': expected an integer.",
    "bool_type": "Invalid type for '{param}': expected a boolean.",
    "float_type": "Invalid type for '{param}': expected a number.",
    "literal_error": "Invalid value for '{param}': {msg}.",
}


def parse_generation_request(payload: Any) -> GenerationSpec:
    """Validate a decoded JSON body: ApiError(400) naming the first parameter of a wrong type,
    then the domain's own checks (generation/spec.py), which raise a Refusal."""
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.", param=None, code="invalid_json")
    try:
        request = ImageGenerationRequest.model_validate(payload)
    except ValidationError as exc:
        raise _first_error(exc) from None
    if request.stream:
        raise invalid(
            "Streaming is not supported yet: leave 'stream' out or set it to false.",
            param="stream",
            code="unsupported_parameter",
        )
    return build_spec(
        model=request.model,
        prompt=request.prompt,
        size=request.size,
        n=request.n,
        response_format=request.response_format,
        seed=request.seed,
        guidance_scale=request.guidance_scale,
        watermark=request.watermark,
        end_user=request.user,
        quality=request.quality,
        output_format=request.output_format,
        output_compression=request.output_compression,
        background=request.background,
    )


def _first_error(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    param = str(error["loc"][0]) if error["loc"] else None
    kind = error["type"]
    template = _MESSAGES.get(kind)
    if template is None:
        message = f"Invalid value for '{param}': {error['msg']}."
    else:
        message = template.format(param=param, msg=error["msg"])
    code = "missing_required_parameter" if kind == "missing" else "invalid_value"
    return invalid(message, param=param, code=code)
