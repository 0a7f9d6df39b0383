"""Provenance on every image we host: marks, readable by machines, that an AI model made it.

Each delivered image is marked before it is stored (services/settle.py), so the hosted file and
the b64_json answer are the same marked bytes:

- XMP (IPTC Photo Metadata 2025.1): ``Iptc4xmpExt:DigitalSourceType`` is
  PROVENANCE_DIGITAL_SOURCE_TYPE (trainedAlgorithmicMedia: the machine-readable marking the EU AI
  Act's Art. 50(2) asks for), ``Iptc4xmpExt:AISystemUsed`` the model's name and
  ``Iptc4xmpExt:AISystemVersionUsed`` its upstream id. It goes where each container keeps XMP
  (JPEG: an APP1 segment; PNG: an ``iTXt`` chunk ``XML:com.adobe.xmp``; WebP: an ``XMP `` chunk
  and the VP8X flag) without decoding the pixels, so a JPEG loses nothing: inserted by
  ``write_xmp`` itself into a JPEG or PNG without XMP (what Seedream delivers), by exiv2
  (pyexiv2) otherwise.
- A C2PA manifest (c2pa-python) signed with the operator's key and certificate, when configured
  (or with a development key in ``make run``): one ``c2pa.created`` action with the same digital
  source type, naming our product as the software agent. Signed last: a byte changed after it
  breaks the manifest's hash of the file.

The prompt is never written: it is the customer's, and files travel.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import zlib
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import pyexiv2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings

from . import catalog, dev_signer
from .upstream import DeliveredImage

logger = logging.getLogger(__name__)

# The formats we host, by the name ``mark`` takes, and their MIME types (C2PA wants these).
FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

# exiv2 knows the IPTC Extension schema (http://iptc.org/std/Iptc4xmpExt/2008-02-29/) by the
# prefix "iptcExt" and writes it so; XMP readers go by the namespace, not the prefix.
DIGITAL_SOURCE_TYPE = "Xmp.iptcExt.DigitalSourceType"
AI_SYSTEM_USED = "Xmp.iptcExt.AISystemUsed"
AI_SYSTEM_VERSION_USED = "Xmp.iptcExt.AISystemVersionUsed"

# exiv2's XMP toolkit has process-wide state that is not safe across threads (nor is pyexiv2's
# error log): one image at a time. pyexiv2 holds the GIL anyway; this makes it a promise.
_exiv2 = threading.Lock()
# exiv2's warnings would go to standard output, outside our logs; its errors raise.
pyexiv2.set_log_level(3)


class ProvenanceError(Exception):
    """The image could not be marked, so it must not be hosted."""


@dataclass(frozen=True)
class MadeBy:
    """What made an image: our public model id, the model's display name, the upstream id."""

    model: str
    name: str
    upstream_model: str

    @classmethod
    def for_model(cls, model: str, upstream_model: str = "") -> MadeBy:
        info = catalog.get_model(model)
        return cls(
            model=model,
            name=info.name if info else model,
            upstream_model=upstream_model or (info.upstream_id if info else ""),
        )


@dataclass(frozen=True)
class SigningKey:
    """A C2PA signer: PEM private key, PEM certificate chain (signing certificate first), and
    the algorithm the key signs with, in c2pa's words (``es256``...)."""

    private_key: bytes
    certificate_chain: bytes
    algorithm: str


def mark(data: bytes, image_format: str, made_by: MadeBy) -> bytes:
    """``data``, a ``jpeg``, ``png`` or ``webp`` image, with its provenance: the XMP, then a
    signed C2PA manifest where a signer is configured. The pixels are untouched.

    Raises ProvenanceError when the XMP cannot be written. A manifest that cannot be signed is
    logged and left out instead: the XMP alone still marks the image, and a signer that broke
    (an expired certificate) must not stop every generation."""
    mime = FORMATS.get(image_format)
    if mime is None:
        raise ProvenanceError(f"cannot mark a {image_format!r} image")
    marked = write_xmp(data, made_by)
    try:
        key = signing_key()
        if key is not None:
            marked = sign(marked, mime, made_by, key)
    except Exception:
        logger.exception("could not sign a C2PA manifest; the image carries the XMP only")
    return marked


def mark_delivered(image: DeliveredImage, made_by: MadeBy) -> DeliveredImage:
    """The delivered image with its bytes marked (``mark``)."""
    image_format = image.content_type.removeprefix("image/")
    marked = mark(image.data, image_format, made_by)
    # Not dataclasses.replace: it reads every field through getattr, on every image.
    return DeliveredImage(
        data=marked,
        content_type=image.content_type,
        extension=image.extension,
        width=image.width,
        height=image.height,
        call=image.call,
        layer=image.layer,
    )


def signs() -> bool:
    """Whether ``mark`` signs a manifest (milliseconds per image, where the XMP takes well under
    one: see bench/provenance_bench.py)."""
    return bool(settings.C2PA_SIGNING_KEY or settings.C2PA_DEVELOPMENT_SIGNER)


def write_xmp(data: bytes, made_by: MadeBy) -> bytes:
    """``data`` with the provenance properties in its XMP (any XMP it had is kept).

    A JPEG or PNG without XMP (what Seedream delivers) gets a packet of ours inserted where its
    format keeps one, the rest of the file untouched: exiv2 would parse and rewrite the whole
    file, about 0.3 ms of the event loop per image. Anything else (a WebP, whose header must
    change too; a file that has XMP already, to be merged) goes through exiv2."""
    inserted = _insert_xmp(data, _packet(made_by, settings.PROVENANCE_DIGITAL_SOURCE_TYPE))
    if inserted is not None:
        return inserted
    values = {
        DIGITAL_SOURCE_TYPE: settings.PROVENANCE_DIGITAL_SOURCE_TYPE,
        AI_SYSTEM_USED: made_by.name,
        AI_SYSTEM_VERSION_USED: made_by.upstream_model,
    }
    try:
        with _exiv2, pyexiv2.ImageData(data) as image:
            image.modify_xmp({key: value for key, value in values.items() if value})
            return bytes(image.get_bytes())
    except (RuntimeError, ValueError) as error:  # what exiv2 raises, through pybind11
        raise ProvenanceError(f"could not write the XMP: {error}") from error


_XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"


@functools.lru_cache(maxsize=64)
def _packet(made_by: MadeBy, digital_source_type: str) -> bytes:
    """Our XMP packet: the IPTC Extension properties as attributes of one rdf:Description
    (the same for every image of a model: kept for the next)."""
    properties = [
        ("DigitalSourceType", digital_source_type),
        ("AISystemUsed", made_by.name),
        ("AISystemVersionUsed", made_by.upstream_model),
    ]
    attributes = "".join(
        f" Iptc4xmpExt:{name}={quoteattr(value)}" for name, value in properties if value
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f"{attributes}/>"
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _insert_xmp(data: bytes, packet: bytes) -> bytes | None:
    """``data`` with ``packet`` inserted, for a well-formed JPEG or PNG that has no XMP yet;
    None for anything else (exiv2 decides)."""
    if data[:2] == b"\xff\xd8":
        return _insert_into_jpeg(data, packet)
    if data[:8] == _PNG_SIGNATURE:
        return _insert_into_png(data, packet)
    return None


def _insert_into_jpeg(data: bytes, packet: bytes) -> bytes | None:
    """An APP1 segment with the XMP header, after the JFIF (APP0) segments that must come
    first; the markers are walked to the scan, so a file that is not a JPEG is left to exiv2
    (which refuses it)."""
    at, insert_at = 2, 2
    while True:
        if at + 4 > len(data) or data[at] != 0xFF:
            return None
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2 or at + 2 + length > len(data):
            return None
        if marker == 0xE1 and data[at + 4 : at + 4 + len(_XMP_APP1_HEADER)] == _XMP_APP1_HEADER:
            return None  # XMP already: merged by exiv2
        if marker == 0xDA:  # start of scan: every header segment has been seen
            break
        at += 2 + length
        if marker == 0xE0 and insert_at == at - 2 - length:
            insert_at = at
    body = _XMP_APP1_HEADER + packet
    if len(body) + 2 > 0xFFFF:
        return None
    segment = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    return _spliced(data, insert_at, segment)


def _insert_into_png(data: bytes, packet: bytes) -> bytes | None:
    """An uncompressed iTXt chunk ``XML:com.adobe.xmp`` after IHDR (before the pixels, as XMP
    readers expect)."""
    at = len(_PNG_SIGNATURE)
    first_end = None
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data):
            return None
        if kind == b"iTXt" and data[at + 8 : at + 8 + len(_PNG_XMP_KEYWORD) + 1] == (
            _PNG_XMP_KEYWORD + b"\x00"
        ):
            return None  # XMP already: merged by exiv2
        if first_end is None:
            if kind != b"IHDR":
                return None
            first_end = end
        if kind == b"IEND":
            break
        at = end
    else:
        return None
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translation NUL
    body = b"iTXt" + _PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    assert first_end is not None
    return _spliced(data, first_end, chunk)


def _spliced(data: bytes, at: int, inserted: bytes) -> bytes:
    """``data`` with ``inserted`` at ``at``, copied once (slices of bytes would copy twice)."""
    view = memoryview(data)
    return b"".join((view[:at], inserted, view[at:]))


def read_xmp(data: bytes) -> dict[str, Any]:
    """The image's XMP properties by exiv2 key (``Xmp.iptcExt.DigitalSourceType``...)."""
    with _exiv2, pyexiv2.ImageData(data) as image:
        return dict(image.read_xmp())


def manifest_definition(made_by: MadeBy) -> dict[str, Any]:
    """The C2PA manifest we sign: the image was created by a trained model, with our product."""
    agent = {"name": settings.PROVENANCE_SOFTWARE_AGENT}
    action = {
        "action": "c2pa.created",
        "digitalSourceType": settings.PROVENANCE_DIGITAL_SOURCE_TYPE,
        "softwareAgent": agent,
        "description": f"Generated with {made_by.name} ({made_by.upstream_model})",
    }
    return {
        "claim_generator_info": [agent],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def sign(data: bytes, mime: str, made_by: MadeBy, key: SigningKey) -> bytes:
    """``data`` with a C2PA manifest signed by ``key`` embedded (no timestamp authority: no
    network call per image)."""
    # Imported here: it loads a 50 MB native library that only a signing process needs.
    import c2pa

    info = c2pa.C2paSignerInfo(key.algorithm, key.certificate_chain, key.private_key, None)
    # No thumbnail in the manifest: it would add a second, smaller copy of the picture (170 KB
    # on a 2048x2048 JPEG) and most of the signing time.
    context_settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    with (
        c2pa.Context(context_settings) as context,
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(manifest_definition(made_by), context) as builder,
    ):
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def signing_key() -> SigningKey | None:
    """The operator's signer (C2PA_SIGNING_KEY, C2PA_CERTIFICATE); else, with
    C2PA_DEVELOPMENT_SIGNER, the development one kept in DATA_DIR; else None (XMP only)."""
    if settings.C2PA_SIGNING_KEY:
        return load_signing_key(settings.C2PA_SIGNING_KEY, settings.C2PA_CERTIFICATE)
    if settings.C2PA_DEVELOPMENT_SIGNER:
        key_pem, chain_pem = dev_signer.key_and_chain(settings.DATA_DIR)
        return load_signing_key(key_pem, chain_pem)
    return None


@functools.lru_cache(maxsize=4)
def load_signing_key(key_pem: str, chain_pem: str) -> SigningKey:
    """The signer of a PEM key and chain; ValueError says what is wrong with them."""
    # An env file may carry a PEM on one line, its line breaks written as \n.
    key_pem, chain_pem = (pem.replace("\\n", "\n") for pem in (key_pem, chain_pem))
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if "-----BEGIN CERTIFICATE-----" not in chain_pem:
        raise ValueError("C2PA_CERTIFICATE holds no PEM certificate")
    return SigningKey(key_pem.encode(), chain_pem.encode(), _algorithm(key))


def _algorithm(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in curves:
            return curves[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError("C2PA signs with an EC key (P-256, P-384, P-521), an RSA or an Ed25519 key")
