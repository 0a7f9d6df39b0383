"""Reference images: the pictures a customer sends with a prompt (image editing), checked
against the model's limits before anything is held or sent upstream.

Every way in (a multipart file, a data URL in JSON, a URL we fetch) ends as bytes checked here
by ``check_reference``: the format is what Pillow finds in the bytes (a name or a declared
content type proves nothing), the file and pixel counts are within the model's limits (the
pixels read from the header before any decoding, so a decompression bomb is refused unread),
each side is longer than 14 pixels, the aspect ratio is within the model's bounds, and the
whole picture decodes. Decoding is CPU work (a tenth of a second for a large photograph): the
callers on an event loop run it on a thread.

HEIC (an iPhone's photographs) is read through pillow-heif's Pillow plugin (``read_heic``), and
offered where the catalog lists it (5.0 Pro, not in a layer split): it is sent upstream as it
came, ``data:image/heic;base64,...``, as Seedream takes it there. Elsewhere a HEIC is refused by
name ("a HEIF image"), like any other format the model does not take.

A customer's own hosted image (``<base>/img/<token>.<ext>``, as /v1 answers link it) may be a
reference without being uploaded again: ``HostedImages`` says whose request it is and where our
answers host images, and such a URL is read from storage, never fetched (our own host may be a
private address). It is "ours" when its host and port are those of ``IMAGE_BASE_URL`` (the
answers' links when it is set) or of the request itself (their links otherwise), whichever the
scheme (a proxy may end TLS before us), and its path is that base's path plus
``/img/<token>.<ext>``. Only the key's own account's images are read: another account's token,
an unknown one and one whose file has gone (retention, deletion) are the same 400, so a refusal
never tells whether a token exists. Any other URL is fetched as before (``input_fetch``).

The upstream is sent each reference as a data URL in the customer's order (generation/
upstream.py); the generation keeps them as InputImage rows and files (``store_references``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pillow_heif
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from . import input_fetch
from .catalog import RETIRED, ModelInfo, all_models
from .models import Image
from .refusals import Reason, Refusal, invalid

if TYPE_CHECKING:
    from server.steps import Steps

# Pillow's format names, as the catalog and Seedream's data URLs spell them.
_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",  # a JPEG with extra frames, as some phones save them
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
    "HEIF": "heic",
}
CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "heic": "image/heic",
}
# Each side of a reference must be longer than this (Seedream's rule for every model).
MIN_SIDE_EXCLUSIVE = 14
# Formats a layer split does not take, even on a model that takes them otherwise (5.0 Pro's
# HEIC: its layer mode takes the 4.x formats only).
NOT_SPLIT_FORMATS = ("heic", "heif")
_DATA_URL_RE = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


@dataclass(frozen=True)
class Reference:
    """A reference image that passed ``check_reference``."""

    data: bytes
    image_format: str  # a key of CONTENT_TYPES
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.image_format]

    @property
    def extension(self) -> str:
        return "jpg" if self.image_format == "jpeg" else self.image_format

    def data_url(self) -> str:
        """As the upstream takes it: ``data:image/<format>;base64,...``, the format lowercase."""
        return f"data:image/{self.image_format};base64,{base64.b64encode(self.data).decode()}"


def decode_data_url(value: str, *, param: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL, or a Refusal naming ``param``."""
    match = _DATA_URL_RE.fullmatch(value)
    if match is None:
        raise invalid(
            f"'{param}' must be an https URL or a data URL (data:image/png;base64,...).",
            param=param,
        )
    try:
        return base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"'{param}' is a data URL whose base64 is not valid.", param=param) from None


def check_count(model: ModelInfo, count: int, *, param: str) -> None:
    """A Refusal unless ``model`` takes ``count`` reference images (1 or more)."""
    if model.max_references == 0 or "edit" not in model.modes:
        able = ", ".join(m.id for m in editing_models())
        raise Refusal(
            Reason.UNSUPPORTED_PARAMETER,
            f"{model.id} does not take reference images. Models that edit: {able}.",
            param=param,
            code="unsupported_parameter",
        )
    if count > model.max_references:
        raise invalid(
            f"{count} reference images were sent; {model.id} takes at most {model.max_references}.",
            param=param,
            code="too_many_images",
        )


def editing_models() -> list[ModelInfo]:
    """The models that take reference images today."""
    models = [m for m in all_models() if m.lifecycle() != RETIRED]
    return [m for m in models if "edit" in m.modes and m.max_references]


@functools.cache
def read_heic() -> None:
    """Let Pillow open HEIC/HEIF, once per process: before any reference is checked, and before
    a HEIC reference's thumbnail is made (generation/thumbnails.py)."""
    pillow_heif.register_heif_opener()


def check_reference(data: bytes, model: ModelInfo, *, param: str) -> Reference:
    """``data`` as a Reference for ``model``, or a Refusal naming ``param`` and what is wrong."""
    read_heic()
    if len(data) > model.reference_max_bytes:
        raise invalid(
            f"'{param}' is {len(data):,} bytes; {model.id} takes reference images of at most "
            f"{model.reference_max_bytes:,} bytes.",
            param=param,
            code="image_too_large",
        )
    allowed = ", ".join(model.reference_formats)
    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            image_format = _FORMATS.get(picture.format or "", "")
            width, height = picture.size
            if image_format not in model.reference_formats:
                found = f"a {picture.format} image" if picture.format else "not an image"
                raise _bad_format(param, found, model, allowed)
            _check_pixels(param, model, width, height)
            picture.load()  # the whole file decodes: a truncated or corrupt one is refused
    except PILImage.DecompressionBombError:
        raise invalid(
            f"'{param}' has too many pixels; {model.id} takes at most "
            f"{model.reference_max_pixels:,}.",
            param=param,
            code="image_too_large",
        ) from None
    except (OSError, ValueError, SyntaxError):  # what Pillow raises for bytes it cannot read
        raise _bad_format(param, "not an image it can read", model, allowed) from None
    return Reference(data=data, image_format=image_format, width=width, height=height)


def split_formats(model: ModelInfo) -> list[str]:
    """The formats ``model`` takes for a layer split's picture."""
    return [f for f in model.reference_formats if f not in NOT_SPLIT_FORMATS]


def _bad_format(param: str, found: str, model: ModelInfo, allowed: str) -> Refusal:
    return invalid(
        f"'{param}' is {found}; {model.id} takes reference images in {allowed}.",
        param=param,
        code="invalid_image_format",
    )


def _check_pixels(param: str, model: ModelInfo, width: int, height: int) -> None:
    if min(width, height) <= MIN_SIDE_EXCLUSIVE:
        raise invalid(
            f"'{param}' is {width}x{height}; each side of a reference image must be longer "
            f"than {MIN_SIDE_EXCLUSIVE} pixels.",
            param=param,
            code="image_too_small",
        )
    if width * height > model.reference_max_pixels:
        raise invalid(
            f"'{param}' is {width}x{height} ({width * height:,} pixels); {model.id} takes "
            f"reference images of at most {model.reference_max_pixels:,} pixels.",
            param=param,
            code="image_too_large",
        )
    low, high = model.reference_min_aspect, model.reference_max_aspect
    if not low <= width / height <= high:
        raise invalid(
            f"'{param}' is {width}x{height}; {model.id} takes reference images with aspect "
            f"ratios (width / height) from 1:{1 / low:g} to {high:g}:1.",
            param=param,
            code="invalid_image_aspect",
        )


@dataclass(frozen=True)
class ImageSource:
    """One reference image as a request gives it: a file's bytes, or a string (an https URL or
    a data URL); ``param`` names it in errors ("image[1]", "images[0].image_url")."""

    param: str
    data: bytes | None = None
    text: str | None = None


# A hosted image's path under its base, as api/urls.py serves it (api/views.py checks the same
# token shape before serving one).
_HOSTED_PATH_RE = re.compile(r"/img/([A-Za-z0-9_-]{16,32})\.([a-z]+)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostedImages:
    """Whose request it is (``account_id``) and where it came (``request_base_url``, the
    ``<scheme>://<host>`` its answer links images under when IMAGE_BASE_URL is unset): a
    reference URL naming one of that account's hosted images is read from storage, with
    ``steps`` for the database."""

    account_id: int
    request_base_url: str
    steps: Steps

    def file_of(self, url: str | None) -> tuple[str, str] | None:
        """The (token, extension) of the hosted image ``url`` names, if it is one of our own
        image URLs (whoever owns the token: that is checked when it is read)."""
        if url is None:
            return None
        found = _site(url)
        if found is None:
            return None
        where, path = found
        for base in (settings.IMAGE_BASE_URL, self.request_base_url):
            ours = _site(base) if base else None
            if ours is None or ours[0] != where:
                continue
            prefix = ours[1].rstrip("/")  # a CDN's base may have a path of its own
            if path.startswith(f"{prefix}/img/"):
                match = _HOSTED_PATH_RE.fullmatch(path[len(prefix) :])
                if match is not None:
                    return match.group(1), match.group(2)
        return None


def _site(url: str) -> tuple[tuple[str, int | None], str] | None:
    """``url``'s (host, port) with a scheme's default port as None, and its path; None for
    anything but a plain http(s) URL (a user name in it, too: never ours)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return (parts.hostname.lower(), None if port == _DEFAULT_PORTS[scheme] else port), parts.path


def owned_image_files(
    account_id: int, files: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The storage names of ``account_id``'s hosted images among ``files`` ((token, extension), as
    their URLs name them), by the same key: another account's token is simply not there,
    exactly like one that does not exist (or one with another extension: no URL serves it)."""
    wanted = set(files)
    rows = Image.objects.filter(account_id=account_id, token__in={token for token, _ in wanted})
    return {
        (token, extension): name
        for token, name in rows.values_list("token", "file")
        for extension in [name.rsplit(".", 1)[-1]]
        if (token, extension) in wanted
    }


def read_hosted_image(name: str) -> bytes:
    """A hosted (gallery) image's bytes, by its storage name, to be used as a reference (blocking
    I/O: on a thread from an event loop). FileNotFoundError once it has been deleted."""
    with default_storage.open(name, "rb") as handle:
        data: bytes = handle.read()
    return data


async def gather_references(
    model: ModelInfo,
    sources: Sequence[ImageSource],
    *,
    param: str,
    hosted: HostedImages | None = None,
) -> tuple[Reference, ...]:
    """The references ``sources`` give, in order, each checked for ``model``: the count first,
    then every URL's form (before anything is fetched), then which of the hosted images named
    are ``hosted``'s own, then the fetches and reads (at once), then each image's bytes (on a
    thread: decoding is CPU work). A Refusal names the first at fault. Without ``hosted``, a
    URL of our own images is fetched as any other."""
    check_count(model, len(sources), param=param)
    ours = {
        index: named
        for index, source in enumerate(sources)
        if hosted is not None and (named := hosted.file_of(source.text)) is not None
    }
    for index, source in enumerate(sources):
        if index not in ours and source.text is not None and not source.text.startswith("data:"):
            _checked_url(source)
    stored: dict[int, str] = {}  # by the source's index: its hosted image's storage name
    if ours:
        assert hosted is not None
        names = await hosted.steps.run(owned_image_files, hosted.account_id, list(ours.values()))
        for index, named in ours.items():
            if named not in names:
                raise _not_hosted(sources[index])
            stored[index] = names[named]
    datas = await asyncio.gather(
        *(_bytes_of(model, source, stored.get(index)) for index, source in enumerate(sources))
    )
    return await asyncio.to_thread(
        lambda: tuple(
            check_reference(data, model, param=source.param)
            for source, data in zip(sources, datas, strict=True)
        )
    )


def _not_hosted(source: ImageSource) -> Refusal:
    # One answer for another account's image, an unknown token and a file that has gone: it
    # must not tell which (a token is a capability; its existence is not to be probed).
    return invalid(
        f"'{source.param}' could not be read: it names none of your images stored here.",
        param=source.param,
        code="invalid_image_url",
    )


def _checked_url(source: ImageSource) -> str:
    assert source.text is not None
    try:
        input_fetch.check_reference_url(source.text)
    except input_fetch.InputFetchError as error:
        raise invalid(
            f"'{source.param}': {error.message}", param=source.param, code="invalid_image_url"
        ) from None
    return source.text


async def _bytes_of(model: ModelInfo, source: ImageSource, hosted_name: str | None) -> bytes:
    if source.data is not None:
        return source.data
    if hosted_name is not None:  # one of the customer's own hosted images: read, not fetched
        try:
            return await asyncio.to_thread(read_hosted_image, hosted_name)
        except FileNotFoundError:
            raise _not_hosted(source) from None
    assert source.text is not None
    if source.text.startswith("data:"):
        return decode_data_url(source.text, param=source.param)
    try:
        data, _ = await input_fetch.fetch_reference(
            source.text, max_bytes=model.reference_max_bytes
        )
    except input_fetch.InputFetchError as error:
        raise invalid(
            f"'{source.param}' could not be fetched: {error.message}",
            param=source.param,
            code="invalid_image_url",
        ) from None
    return data
