"""The request bodies of POST /v1/images/generations and /v1/images/edits, validated strictly.

Strict types: ``"n": "2"`` or ``"n": 2.0`` is an error, as a typed client would expect. Unknown
fields are ignored, and the OpenAI fields that do not apply to Seedream are accepted and ignored.
``quality``, ``output_format``, ``output_compression`` and ``background`` are OpenAI's and mean
what they mean there (generation/spec.py checks their values, for every way in). ``stream:
true`` asks for the answer as Server-Sent Events (api/streaming.py); it is the API's concern
only and never reaches the domain or the upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from generation.references import HostedImages, ImageSource, gather_references
from generation.spec import (
    COMPRESSION_MAX,
    COMPRESSION_MIN,
    GUIDANCE_SCALE_MAX,
    GUIDANCE_SCALE_MIN,
    IMAGES_MAX,
    SEED_MAX,
    SET_TOTAL_MAX,
    GenerationSpec,
    build_spec,
)

from .errors import ApiError, invalid

_Request = TypeVar("_Request", bound="ImageGenerationRequest")


class SetOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    max_images: StrictInt | None = Field(default=None, ge=1, le=SET_TOTAL_MAX)


class ImageGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: StrictStr = Field(min_length=1, max_length=64)
    prompt: StrictStr
    n: StrictInt = Field(default=1, ge=1, le=IMAGES_MAX)
    size: StrictStr | None = Field(default=None, max_length=16)
    response_format: Literal["url", "b64_json"] | None = None
    user: StrictStr | None = Field(default=None, max_length=256)
    stream: StrictBool | None = None
    # Answer 202 with a job at once (as ``Prefer: respond-async`` does), for clients that
    # cannot set headers.
    respond_async: StrictBool = Field(default=False, alias="async")
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
    # Reference images, as Seedream's own docs send them: a URL or a data URL, or a list of
    # them (OpenAI SDK users pass it through `extra_body`).
    image: StrictStr | list[StrictStr] | None = None
    # A set of related images in one call (Seedream's fields; 4.0, 4.5, 5.0 Lite).
    sequential_image_generation: StrictStr | None = Field(default=None, max_length=16)
    sequential_image_generation_options: SetOptions | None = None
    # A picture split into layers (Seedream's field; 5.0 Pro, Flash, 5.5), with our cap on the
    # layers (the hold is the base and this many layers; the model's most by default).
    layer_decomposition: StrictBool = False
    max_layers: StrictInt | None = Field(default=None, ge=1, le=1000)
    # Accepted and ignored (OpenAI fields with no Seedream meaning).
    style: Any = None
    moderation: Any = None
    # Streaming sends no partial images, only each finished one (api/streaming.py).
    partial_images: Any = None


class ImageEditRequest(ImageGenerationRequest):
    """An edit's fields: a generation's, with OpenAI's JSON form of the images and its own
    extras (``mask`` is refused: Seedream edits by description)."""

    images: list[dict[str, Any]] | None = None
    mask: Any = None
    input_fidelity: Any = None


_MESSAGES = {
    "missing": "Missing required parameter: '{param}'.",
    "string_type": "Invalid type for '{param}': expected a string.",
    "int_type": "Invalid type for '{param}': expected an integer.",
    "bool_type": "Invalid type for '{param}': expected a boolean.",
    "float_type": "Invalid type for '{param}': expected a number.",
    "literal_error": "Invalid value for '{param}': {msg}.",
}


@dataclass(frozen=True)
class ImagesRequest:
    """A validated images request: the domain's spec, and what only the answer needs (sent as
    events, and the ``quality`` asked for, which the events report)."""

    spec: GenerationSpec
    stream: bool = False
    quality: str | None = None
    # The body's ``"async": true``: answer with a job (api/jobs.py).
    respond_async: bool = False
    # What an Idempotency-Key compares, when the body's bytes cannot say it (a multipart form).
    fingerprint: str = ""


async def generation_request(payload: Any, hosted: HostedImages | None = None) -> ImagesRequest:
    """A decoded JSON generation body, validated: ApiError(400) naming the first parameter of
    a wrong type, then the domain's own checks (generation/spec.py), which raise a Refusal,
    then its reference images (``image``), gathered and checked (``hosted``: whose own hosted
    images a URL may name, read from storage; generation/references.py)."""
    request = _validated(ImageGenerationRequest, payload)
    values = [request.image] if isinstance(request.image, str) else request.image or []
    sources = [
        ImageSource(param="image" if len(values) == 1 else f"image[{i}]", text=value)
        for i, value in enumerate(values)
    ]
    spec = await _with_references(_spec(request, len(sources), "image"), sources, "image", hosted)
    return _answered(request, spec)


async def edit_request(
    payload: Any, files: list[ImageSource] | None = None, hosted: HostedImages | None = None
) -> ImagesRequest:
    """An edit, validated: ``payload`` its fields (a JSON body's, or a multipart form's
    already typed by ``form_fields``), ``files`` the multipart form's images in order (None
    for a JSON body, whose images are ``images: [{"image_url": ...}]``), ``hosted`` as for
    ``generation_request``."""
    request = _validated(ImageEditRequest, payload)
    if request.mask is not None:
        raise invalid(
            "'mask' is not supported: Seedream edits by description, not by a masked area. "
            "Say in the prompt what to change and where.",
            param="mask",
            code="unsupported_parameter",
        )
    if files is None:
        sources = _json_images(request)
    else:
        if request.images is not None or request.image is not None:
            raise invalid(
                "Send the images as files ('image' or 'image[]') in a multipart request, or as "
                "'images' in a JSON one, not both.",
                param="images",
            )
        sources = files
    if not sources:
        param = "images" if files is None else "image"
        raise invalid(f"Missing required parameter: '{param}'.", param=param,
                      code="missing_required_parameter")  # fmt: skip
    param = "images" if files is None else "image"
    spec = await _with_references(_spec(request, len(sources), param), sources, param, hosted)
    return _answered(request, spec)


def _answered(request: ImageGenerationRequest, spec: GenerationSpec) -> ImagesRequest:
    return ImagesRequest(
        spec=spec,
        stream=bool(request.stream),
        quality=request.quality,
        respond_async=request.respond_async,
    )


def _json_images(request: ImageEditRequest) -> list[ImageSource]:
    if request.image is not None:  # Seedream's own field, on the edits path too
        values = [request.image] if isinstance(request.image, str) else request.image
        return [ImageSource(param=f"image[{i}]", text=v) for i, v in enumerate(values)]
    sources = []
    for index, item in enumerate(request.images or []):
        param = f"images[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"'{param}' must be an object with 'image_url'.", param=param)
        if "file_id" in item:
            raise invalid(
                f"'{param}.file_id' is not supported (there is no Files API here): send the "
                "image as 'image_url', an https URL or a data URL.",
                param=f"{param}.file_id",
                code="unsupported_parameter",
            )
        url = item.get("image_url")
        if isinstance(url, dict):  # {"image_url": {"url": ...}}, as the chat API spells it
            url = url.get("url")
        if not isinstance(url, str) or not url:
            raise invalid(
                f"'{param}.image_url' must be an https URL or a data URL.",
                param=f"{param}.image_url",
            )
        sources.append(ImageSource(param=f"{param}.image_url", text=url))
    return sources


def _validated(schema: type[_Request], payload: Any) -> _Request:
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.", param=None, code="invalid_json")
    if (param := _nul_at(payload)) is not None:
        # PostgreSQL stores no NUL character in text or JSON: refused here, named, rather than
        # a 500 when the generation is recorded (found by tests/integration/test_openapi_fuzz.py).
        raise invalid(f"Invalid value for '{param}': it contains a NUL character.", param=param)
    if payload.get("layer_decomposition") is True and "prompt" not in payload:
        payload = {**payload, "prompt": ""}  # a split needs no prompt: the model finds the parts
    try:
        request = schema.model_validate(payload)
    except ValidationError as exc:
        raise _first_error(exc) from None
    return request


def _nul_at(value: Any, path: str | None = None) -> str | None:
    """The first parameter (``images[0].image_url``) whose text, or key, has a NUL character."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    for key, item in items:
        name = f"{path}{key}" if str(key).startswith("[") else (f"{path}.{key}" if path else key)
        if "\x00" in str(key):
            return str(path or "body")
        if (found := _nul_at(item, str(name))) is not None:
            return found
    return None


async def _with_references(
    spec: GenerationSpec, sources: list[ImageSource], param: str, hosted: HostedImages | None
) -> GenerationSpec:
    if not sources:
        return spec
    gathered = await gather_references(spec.model, sources, param=param, hosted=hosted)
    return spec.with_references(gathered)


def _spec(request: ImageGenerationRequest, reference_count: int, param: str) -> GenerationSpec:
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
        reference_count=reference_count,
        references_param=param,
        sequential_image_generation=request.sequential_image_generation,
        max_images=(
            request.sequential_image_generation_options.max_images
            if request.sequential_image_generation_options
            else None
        ),
        layer_decomposition=request.layer_decomposition,
        max_layers=request.max_layers,
    )


def _first_error(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    param = str(loc[0]) if loc else None
    if param == "sequential_image_generation_options" and len(loc) > 1:
        param = f"{param}.{loc[1]}"  # the nested field at fault
    kind = error["type"]
    template = _MESSAGES.get(kind)
    if template is None:
        message = f"Invalid value for '{param}': {error['msg']}."
    else:
        message = template.format(param=param, msg=error["msg"])
    code = "missing_required_parameter" if kind == "missing" else "invalid_value"
    return invalid(message, param=param, code=code)
