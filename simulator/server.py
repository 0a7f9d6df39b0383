"""The simulator's HTTP server: the generation endpoint, the signed image links and the test hooks.

It answers ``POST /api/v3/images/generations`` with the real upstream's request validation,
response and error bodies, and serves the images from signed, expiring links shaped like the TOS
links the real upstream returns. Every picture of a call with reference images carries their mean
colours in a band across its top (``images.draw_reference_band``).

Test hooks: ``GET /_sim/health``, and ``GET /_sim/calls?prompt=...``, which reports the calls
received with that exact prompt and the references each carried (``Simulator.handle_calls``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from . import READY_PREFIX
from .faults import WHOLE, Delivery, Faults, parse_markers
from .images import (
    BAD_IMAGE_BYTES,
    HUGE_IMAGE_BYTES,
    HUGE_IMAGE_PREFIX,
    RGB,
    ImageCache,
    ImageSpec,
    mean_colour,
)
from .protocol import (
    API_PREFIX,
    MODERATION_MESSAGES,
    OUTPUT_IMAGE,
    URL_TTL_SECONDS,
    InputImage,
    ModelRules,
    UpstreamError,
    check_window,
    internal_error,
    invalid,
    is_int,
    is_number,
    layer_base_size,
    missing,
    model_rules,
    moderation_code,
    moderation_error,
    parse_adaptive_size,
    parse_images,
    parse_layer_size,
    parse_size,
    reference_ids,
    scaled,
    seededit_size,
    unsupported,
)

TOS_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
OFFSITE_URL: Final = "http://203.0.113.9/evil.jpeg"  # TEST-NET-3: never routable, never fetched
CALL_COUNTER_ENTRIES: Final = 100_000
# /_sim/calls lists the references of this many calls per prompt (the first ones); a load test
# sending one prompt many times must not grow the simulator without bound.
CALL_REFERENCES_ENTRIES: Final = 1_000


DEFAULT_LAYERS: Final = 3  # what layer_decomposition gives without a [sim:layers=K] marker
MAX_SET_TOTAL: Final = 15  # reference images + the images of a set
SET_FIELDS: Final = ("sequential_image_generation", "sequential_image_generation_options", "stream")


@dataclass(frozen=True)
class GenerationCall:
    """A validated ``images/generations`` request."""

    model: str
    rules: ModelRules
    prompt: str
    number: int  # this call's position among the calls received with this exact prompt
    faults: Faults
    width: int  # of each image delivered (of the base in layer mode)
    height: int
    seed: int
    response_format: str
    watermark: bool
    images: int  # how many the model makes: 1, or a set's count
    output_format: str  # "jpeg" or "png"
    transparent: bool
    layers: int | None  # layer_decomposition: how many layers besides the base
    references: tuple[InputImage, ...]  # the reference images, in the order received
    # Their mean colours, for the pictures' band: read (off the event loop) once the call is
    # known to make pictures.
    colours: tuple[RGB, ...] = ()


@dataclass
class PromptCalls:
    """What ``/_sim/calls`` reports for one prompt."""

    count: int = 0
    # Per call, in the order received: its references as ``protocol.reference_id`` reads them.
    references: list[tuple[str | None, ...]] = field(default_factory=list)


# --- Requests and responses ---------------------------------------------------------------------


def new_request_id() -> str:
    """An id shaped like the upstream's (``021`` + milliseconds + hex)."""
    return f"021{int(time.time() * 1000)}{secrets.token_hex(16)}"


_REQUEST_ID: Final = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """The id of this request, made on first use; every response carries it as x-request-id."""
    value = request.get(_REQUEST_ID)
    if value is None:
        value = new_request_id()
        request[_REQUEST_ID] = value
    return value


def _json_response(body: object, *, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


# --- The handlers -------------------------------------------------------------------------------


class Simulator:
    """The simulator's state (key, latency, caches, call counters) and its request handlers."""

    def __init__(self, *, api_key: str, latency: float = 0.0, public_url: str = "") -> None:
        self.api_key = api_key
        self.latency = latency
        # Base of the image links; known only once the port is bound when serving on port 0.
        self.public_url = public_url.rstrip("/")
        self.images = ImageCache()
        self._calls: OrderedDict[str, PromptCalls] = OrderedDict()
        # Per process: links from an earlier run stop verifying, as a rotated TOS key would.
        self._secret = secrets.token_bytes(32)

    def app(self) -> web.Application:
        # Bodies may carry base64 reference images (up to 10 MB each upstream).
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"{API_PREFIX}/images/generations", self.handle_generation)
        app.router.add_get(r"/tos/{token:[A-Za-z0-9_-]+}.{ext:jpeg|png}", self.handle_image)
        app.router.add_get("/_sim/health", self.handle_health)
        app.router.add_get("/_sim/calls", self.handle_calls)
        app.on_response_prepare.append(self._stamp_request_id)
        return app

    @staticmethod
    async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("x-request-id", request_id(request))

    # - Generation -

    async def handle_generation(self, request: web.Request) -> web.StreamResponse:
        rid = request_id(request)
        if not self._authenticated(request):
            error = UpstreamError(
                401, "AuthenticationError", "The API key in the request is missing or invalid."
            )
            return _json_response(error.body(rid), status=error.status)
        delay = self.latency
        delivery = WHOLE
        try:
            call = self._parse(await self._read_json(request))
            delay += call.faults.latency
            delivery = call.faults.answer
            response = await self._answer(call)
        except UpstreamError as error:
            response = _json_response(error.body(rid), status=error.status)
        if delay > 0:
            await asyncio.sleep(delay)
        return await deliver(request, response, delivery)

    def _authenticated(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            key.strip().encode(), self.api_key.encode()
        )

    @staticmethod
    async def _read_json(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise invalid("", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise invalid("", "the request body must be a JSON object")
        return body

    def _count_call(self, prompt: str, references: tuple[str | None, ...]) -> int:
        calls = self._calls.get(prompt)
        if calls is None:
            calls = self._calls[prompt] = PromptCalls()
        calls.count += 1
        if len(calls.references) < CALL_REFERENCES_ENTRIES:
            calls.references.append(references)
        self._calls.move_to_end(prompt)
        while len(self._calls) > CALL_COUNTER_ENTRIES:
            self._calls.popitem(last=False)
        return calls.count

    def _parse(self, body: dict[str, Any]) -> GenerationCall:
        prompt = body.get("prompt")
        # Counted before any validation: /_sim/calls reports every call received. Its references
        # are read here too (their base64 is decoded again by parse_images below), so a refused
        # call still shows what it carried.
        number = (
            self._count_call(prompt, reference_ids(body.get("image")))
            if isinstance(prompt, str)
            else 0
        )

        model = body.get("model")
        if model is None or model == "":
            raise missing("model")
        if not isinstance(model, str):
            raise invalid("model", "model must be a string")
        rules = model_rules(model)
        if rules is None:
            raise UpstreamError(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {model} does not exist or you do not have access to it.",
            )

        layers = _layer_mode(body, rules)
        # In layer mode the prompt is optional: the model then finds the elements itself.
        if prompt is None and layers:
            prompt = ""
        if prompt is None or (isinstance(prompt, str) and not prompt.strip() and not layers):
            raise missing("prompt")
        if not isinstance(prompt, str):
            raise invalid("prompt", "prompt must be a string")
        faults = parse_markers(prompt)

        inputs = parse_images(body.get("image"), rules, layers=layers)
        images = _set_count(body, rules, faults, inputs=len(inputs), layers=layers)

        if layers:
            size = layer_base_size(parse_layer_size(body.get("size"), rules), inputs[0].size)
        elif rules.adaptive:
            parse_adaptive_size(body.get("size"))
            size = seededit_size(inputs[0].size)
        else:
            size = parse_size(body.get("size"), rules)
        if faults.deliver_size is not None:
            # The model picked another size than the keyword's (Pro and Flash do, within a tier).
            check_window(*faults.deliver_size, rules, param="prompt")
            size = faults.deliver_size

        seed = body.get("seed", -1)
        if "seed" in body and not rules.seed:
            raise unsupported("seed", rules)
        if not is_int(seed) or not -1 <= seed <= 2_147_483_647:
            raise invalid("seed", "seed must be an integer within [-1, 2147483647]")

        guidance_scale = body.get("guidance_scale")
        if guidance_scale is not None:
            if not rules.guidance_scale:
                raise unsupported("guidance_scale", rules)
            if not is_number(guidance_scale) or not 1 <= guidance_scale <= 10:
                raise invalid("guidance_scale", "guidance_scale must be a number within [1, 10]")

        output_format = _output_format(body, rules)
        transparent = _transparent(body, rules, output_format, layers=layers)

        response_format = body.get("response_format", "url")
        if response_format not in ("url", "b64_json"):
            raise invalid("response_format", "response_format must be url or b64_json")

        watermark = body.get("watermark", True)  # upstream stamps the mark unless told not to
        if not isinstance(watermark, bool):
            raise invalid("watermark", "watermark must be a boolean")

        layer_count = None
        if layers:
            layer_count = DEFAULT_LAYERS if faults.layers is None else faults.layers
            if layer_count > rules.max_layers:
                raise invalid(
                    "prompt", f"simulator marker [sim:layers] must be at most {rules.max_layers}"
                )

        return GenerationCall(
            model=model,
            rules=rules,
            prompt=prompt,
            number=number,
            faults=faults,
            width=size[0],
            height=size[1],
            seed=seed,
            response_format=response_format,
            watermark=watermark,
            images=images,
            output_format="png" if transparent else output_format,
            transparent=transparent,
            layers=layer_count,
            references=tuple(inputs),
        )

    async def _answer(self, call: GenerationCall) -> web.Response:
        faults = call.faults
        flags = faults.flags
        if "quota" in flags:
            raise UpstreamError(
                403,
                "AccountOverdueError",
                "The request failed because your account has an overdue balance.",
            )
        if "error-429" in flags:
            raise UpstreamError(
                429,
                "ModelAccountIpmRateLimitExceeded",
                "The request failed because you have exceeded the images per minute (IPM) "
                "limit of the model for your account. Please try again later.",
            )
        if "error-500" in flags or call.number <= faults.fail_first:
            raise internal_error()
        if faults.deliver is not None and call.number > faults.deliver:
            raise internal_error()
        family = faults.moderation()
        if family is not None:
            if "in-200" not in flags:
                raise moderation_error(family, faults.block_reason)
            return self._response(call, [_error_entry(family, faults.block_reason)], [])
        if call.references:
            # Decoding large references takes a while: in a thread, as rendering does.
            colours = await asyncio.to_thread(_mean_colours, call.references)
            call = replace(call, colours=colours)
        if call.layers is not None:
            return await self._answer_layers(call, call.layers)

        kind = (
            "bad"
            if "bad-image" in flags
            else "huge"
            if "huge-image" in flags
            else "photo"
            if "photo" in flags
            else "jpeg"
        )
        data: list[dict[str, Any]] = []
        delivered: list[ImageSpec] = []
        for index in range(call.images):
            if index == faults.set_error_500:
                # An internal error stops the set: upstream does not make the images after it.
                error = internal_error()
                data.append({"error": {"code": error.code, "message": error.message}})
                break
            last = index == call.images - 1
            if index in faults.set_block or ("batch-error" in flags and last):
                # Output moderation blocks this member only; the set goes on.
                data.append(_error_entry(OUTPUT_IMAGE, faults.block_reason))
                continue
            spec = self._spec(call, index, kind=kind)
            delivered.append(spec)
            data.append({"spec": spec})
        entries = await asyncio.gather(*(self._entry(spec, call) for spec in delivered))
        filled = iter(entries)
        data = [next(filled) if "spec" in entry else entry for entry in data]
        return self._response(call, data, delivered)

    def _spec(
        self,
        call: GenerationCall,
        index: int,
        *,
        kind: str = "jpeg",
        size: tuple[int, int] | None = None,
        png: bool = False,
        label: str = "",
    ) -> ImageSpec:
        return ImageSpec.for_prompt(
            call.prompt,
            seed=call.seed,
            size=size or (call.width, call.height),
            watermark=call.watermark,
            index=index,
            kind=kind,
            delivery=call.faults.image,
            model=f"{call.rules.name} ({call.model})",
            fmt="png" if png else call.output_format,
            alpha=png or call.transparent,
            label=label,
            references=call.colours,
        )

    async def _answer_layers(self, call: GenerationCall, count: int) -> web.Response:
        """Layer decomposition: the base (z_index 0) and ``count`` layers, all or nothing."""
        faults = call.faults
        if faults.set_error_500 is not None:
            raise internal_error()
        if faults.set_block or "batch-error" in faults.flags:
            raise moderation_error(OUTPUT_IMAGE, faults.block_reason)
        width, height = call.width, call.height
        base = self._spec(call, 0, label="base")
        specs = [base]
        extras: list[dict[str, Any]] = [{"z_index": 0}]
        for layer in range(1, count + 1):
            # Horizontal bands across the base; each layer keeps its box's ratio at the base's
            # pixel count, as the real layers come out close to the tier size.
            box = (
                width // 10,
                height * (layer - 1) // count,
                width - width // 10,
                height * layer // count,
            )
            box_size = (box[2] - box[0], max(1, box[3] - box[1]))
            size = scaled(box_size, width * height)
            specs.append(
                self._spec(call, layer, size=size, png=True, label=f"layer {layer} of {count}")
            )
            extras.append(
                {
                    "z_index": layer,
                    "bounding_box": {
                        "absolute": list(box),
                        "normalized": [
                            round(box[0] * 1000 / width),
                            round(box[1] * 1000 / height),
                            round(box[2] * 1000 / width),
                            round(box[3] * 1000 / height),
                        ],
                    },
                    "name": f"element {layer}",
                    "description": f"simulated element {layer} of {count}",
                }
            )
        entries = await asyncio.gather(*(self._entry(spec, call) for spec in specs))
        data = [{**entry, **extra} for entry, extra in zip(entries, extras, strict=True)]
        return self._response(call, data, specs)

    @staticmethod
    def _response(
        call: GenerationCall, data: list[dict[str, Any]], delivered: list[ImageSpec]
    ) -> web.Response:
        tokens = sum(round(spec.width * spec.height / 256) for spec in delivered)
        usage: dict[str, Any] = {
            "generated_images": len(delivered),
            "output_tokens": tokens,
            "total_tokens": tokens,
        }
        if call.rules.reports_input_images:
            usage["input_images"] = len(call.references)
        return _json_response(
            {"model": call.model, "created": int(time.time()), "data": data, "usage": usage}
        )

    async def _entry(self, spec: ImageSpec, call: GenerationCall) -> dict[str, Any]:
        entry: dict[str, Any]
        if call.response_format == "b64_json":
            body = await self._image_bytes(spec)
            entry = {"b64_json": base64.b64encode(body).decode()}
        elif "offsite-url" in call.faults.flags:
            entry = {"url": OFFSITE_URL}
        else:
            if spec.kind in ("jpeg", "photo"):
                # Rendered before answering, as upstream does, so the product's fetch hits the
                # cache.
                await self.images.get(spec)
            entry = {"url": self.image_url(spec, expires=call.faults.expires)}
        entry["size"] = spec.size
        if call.rules.reports_output_format:
            entry["output_format"] = spec.fmt
        return entry

    async def _image_bytes(self, spec: ImageSpec) -> bytes:
        if spec.kind == "bad":
            return BAD_IMAGE_BYTES
        if spec.kind == "huge":
            return HUGE_IMAGE_PREFIX + bytes(HUGE_IMAGE_BYTES - len(HUGE_IMAGE_PREFIX))
        return await self.images.get(spec)

    # - Signed image links -

    def _signature(self, token: str, date: str, expires: str) -> str:
        message = f"{token}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def image_url(self, spec: ImageSpec, *, expires: int = URL_TTL_SECONDS) -> str:
        token = spec.token()
        date = datetime.now(UTC).strftime(TOS_DATE_FORMAT)
        signature = self._signature(token, date, str(expires))
        return (
            f"{self.public_url}/tos/{token}.{spec.content_type.removeprefix('image/')}"
            f"?X-Tos-Expires={expires}&X-Tos-Date={date}&X-Tos-Signature={signature}"
        )

    async def handle_image(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        expires = request.query.get("X-Tos-Expires", "")
        date = request.query.get("X-Tos-Date", "")
        signature = request.query.get("X-Tos-Signature", "")
        expected = self._signature(token, date, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return _tos_error(
                request, "SignatureDoesNotMatch", "The request signature does not match."
            )
        # Signed by us, so the date and token parse; the expiry is what remains to check.
        signed_at = datetime.strptime(date, TOS_DATE_FORMAT).replace(tzinfo=UTC).timestamp()
        if time.time() >= signed_at + int(expires):
            return _tos_error(request, "AccessDenied", "Request has expired.")
        try:
            spec = ImageSpec.from_token(token)
        except ValueError:
            return _tos_error(request, "AccessDenied", "The object key is invalid.")
        if spec.kind == "huge":
            return await _stream_huge_image(request)
        response = web.Response(body=await self._image_bytes(spec), content_type=spec.content_type)
        return await deliver(request, response, spec.delivery)

    # - Test helpers -

    async def handle_health(self, request: web.Request) -> web.Response:
        return _json_response({"ok": True})

    async def handle_calls(self, request: web.Request) -> web.Response:
        """The calls received with exactly this ``prompt``, refused ones included.

        ``{"calls": <count>, "references": [[...], ...]}``: one list per call in the order
        received (for the first ``CALL_REFERENCES_ENTRIES`` calls), holding that call's
        references in its order: the sha256 hex of a data URI's decoded bytes, a URL as sent,
        or null for an item that was neither.
        """
        prompt = request.query.get("prompt")
        if prompt is None:
            return _json_response({"error": "the prompt query parameter is required"}, status=400)
        calls = self._calls.get(prompt, PromptCalls())
        return _json_response(
            {"calls": calls.count, "references": [list(call) for call in calls.references]}
        )


# --- Request fields whose rules depend on the model -------------------------------------------


def _layer_mode(body: dict[str, Any], rules: ModelRules) -> bool:
    """Whether ``layer_decomposition`` asks for layers; refused where the model has none."""
    if "layer_decomposition" not in body:
        return False
    if not rules.max_layers:
        raise unsupported("layer_decomposition", rules)
    value = body["layer_decomposition"]
    if not isinstance(value, bool):
        raise invalid("layer_decomposition", "layer_decomposition must be a boolean")
    if value:
        # Upstream rejects these in layer mode (seedream-2026.md section 3.3, item 6).
        for field in (*SET_FIELDS, "background", "tools"):
            if field in body:
                raise unsupported(field, rules, f"{field} is not supported in layer decomposition")
    return value


def _set_count(
    body: dict[str, Any], rules: ModelRules, faults: Faults, *, inputs: int, layers: bool
) -> int:
    """How many images this call makes: a set's count with ``sequential_image_generation=auto``
    on a model with sets, else one."""
    if rules.sets == "rejected":
        # Pro and Flash refuse these fields whatever their value ("disabled", false); 5.5 does
        # not offer them.
        for field in SET_FIELDS:
            if field in body:
                raise unsupported(field, rules)
        return 1
    if layers:
        return 1
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "stream must be a boolean")
    if stream:
        raise invalid("stream", "streaming is not simulated")
    mode = body.get("sequential_image_generation", "disabled")
    if mode not in ("auto", "disabled"):
        raise invalid(
            "sequential_image_generation",
            "sequential_image_generation must be auto or disabled",
        )
    options = body.get("sequential_image_generation_options") or {}
    if not isinstance(options, dict):
        raise invalid("sequential_image_generation_options", "it must be an object with max_images")
    max_images = options.get("max_images", MAX_SET_TOTAL)
    if not is_int(max_images) or not 1 <= max_images <= MAX_SET_TOTAL:
        raise invalid(
            "sequential_image_generation_options.max_images",
            f"max_images must be an integer within [1, {MAX_SET_TOTAL}]",
        )
    if mode != "auto" or rules.sets != "yes":
        return 1
    if inputs + max_images > MAX_SET_TOTAL:
        raise invalid(
            "sequential_image_generation_options.max_images",
            f"reference images ({inputs}) plus max_images must be at most {MAX_SET_TOTAL}",
        )
    # The model decides how many images a set has, up to max_images: the simulator gives
    # max_images, or what [sim:set-count=K] says (never more than max_images).
    return min(faults.set_count or max_images, max_images)


def _output_format(body: dict[str, Any], rules: ModelRules) -> str:
    if "output_format" not in body:
        return "jpeg"
    if not rules.output_formats:
        raise unsupported("output_format", rules, f"{rules.name} returns JPEG only")
    value = body["output_format"]
    if value not in rules.output_formats:
        allowed = " or ".join(rules.output_formats)
        raise invalid("output_format", f"output_format must be {allowed}")
    return str(value)


def _transparent(
    body: dict[str, Any], rules: ModelRules, output_format: str, *, layers: bool
) -> bool:
    """Whether ``background`` asks for a transparent PNG (``auto``/``opaque`` change nothing)."""
    if "background" not in body:
        return False
    if not rules.backgrounds:
        raise unsupported("background", rules)
    value = body["background"]
    if value not in rules.backgrounds:
        raise invalid("background", f"background must be {', '.join(rules.backgrounds)}")
    if value == "transparent" and body.get("output_format") == "jpeg":
        raise invalid("background", "a transparent background needs output_format png")
    return value == "transparent"


def _mean_colours(references: Sequence[InputImage]) -> tuple[RGB, ...]:
    return tuple(mean_colour(reference.data) for reference in references)


def _error_entry(family: str, reason: str) -> dict[str, Any]:
    return {
        "error": {"code": moderation_code(family, reason), "message": MODERATION_MESSAGES[family]}
    }


def _tos_error(request: web.Request, code: str, message: str) -> web.Response:
    # TOS (the object store behind upstream links) answers with a JSON error of this shape.
    body = {"Code": code, "Message": message, "RequestId": request_id(request)}
    return _json_response(body, status=403)


# [sim:garbage]: what a proxy between us and the upstream answers when the upstream fails it.
GARBAGE_BODY: Final = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>\n"
)
TRICKLE_PIECES: Final = 10


async def deliver(
    request: web.Request, response: web.Response, delivery: Delivery
) -> web.StreamResponse:
    """``response`` as ``delivery`` says: whole, or broken the way a faulty upstream breaks it."""
    if delivery == WHOLE:
        return response
    transport = request.transport
    assert transport is not None
    if delivery.close:
        # Closed before a byte of the answer: aiohttp's write of the response then fails on the
        # closed transport, which it takes as a client gone (nothing logged).
        transport.close()
        return response
    if delivery.garbage:
        response = web.Response(body=GARBAGE_BODY, content_type="text/html")
    body = response.body
    assert isinstance(body, bytes)
    if not delivery.truncate and not delivery.trickle_seconds:
        return response
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)  # the whole body is promised, whatever is sent
    sent = body[: len(body) // 2] if delivery.truncate else body
    try:
        await stream.prepare(request)
        if delivery.trickle_seconds:
            step = -(-len(sent) // TRICKLE_PIECES)  # ceiling: at most TRICKLE_PIECES pieces
            pause = delivery.trickle_seconds / TRICKLE_PIECES
            for start in range(0, len(sent), step):
                await asyncio.sleep(pause)
                await stream.write(sent[start : start + step])
        else:
            await stream.write(sent)
    except ConnectionError:
        return stream  # the client gave up first (its timeout), which is the point
    if delivery.truncate:
        # What was written is flushed before the connection closes; the rest never comes.
        transport.close()
    return stream


_HUGE_CHUNK: Final = bytes(1024 * 1024)


async def _stream_huge_image(request: web.Request) -> web.StreamResponse:
    """A 40 MiB body written in 1 MiB chunks, so it is never held in memory at once."""
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.content_length = HUGE_IMAGE_BYTES
    await response.prepare(request)
    try:
        await response.write(HUGE_IMAGE_PREFIX + _HUGE_CHUNK[len(HUGE_IMAGE_PREFIX) :])
        for _ in range(HUGE_IMAGE_BYTES // len(_HUGE_CHUNK) - 1):
            await response.write(_HUGE_CHUNK)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the product hung up once it reached its size cap, which is the point
    return response


# --- Serving ------------------------------------------------------------------------------------


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(
    *,
    host: str,
    port: int,
    api_key: str,
    latency: float = 0.0,
    public_url: str | None = None,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until SIGTERM or SIGINT; ``on_ready`` gets the bound ``http://host:port``.

    ``port`` 0 binds a free port; ``public_url`` (default: the bound address) is the base of
    the image links.
    """
    simulator = Simulator(api_key=api_key, latency=latency)
    # access_log=None: formatting a log line per request would dominate CPU in the benchmarks.
    # shutdown_timeout: keep-alive connections from the product must not delay a clean exit.
    runner = web.AppRunner(simulator.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = runner.addresses[0][1]
        listen_url = f"http://{_url_host(host)}:{bound_port}"
        simulator.public_url = (public_url or listen_url).rstrip("/")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        on_ready(listen_url)
        await stop.wait()
    finally:
        await runner.cleanup()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed: the benchmarks measure the product, not this process."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(
    *, host: str, port: int, api_key: str, latency: float = 0.0, public_url: str | None = None
) -> None:
    """Serve in this process until SIGTERM or SIGINT (see ``serve``).

    Once listening it prints one line, ``READY_PREFIX`` and the bound ``http://host:port``.
    """

    def announce(url: str) -> None:
        # Exactly one line, flushed: tests and `make run` wait for it on a pipe.
        print(f"{READY_PREFIX}{url}", flush=True)

    server = serve(
        host=host,
        port=port,
        api_key=api_key,
        latency=latency,
        public_url=public_url,
        on_ready=announce,
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(server)
