"""Reading an image's provenance as an outside reader would: the containers parsed here, by hand,
rather than by exiv2 (which writes them), and the XMP by an XML parser, by namespace."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from PIL import Image as PILImage

IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def jpeg_segments(data: bytes) -> list[bytes]:
    """A JPEG's marker segments up to the scan, each whole (marker included), then the scan and
    everything after it as one last part."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    parts, at = [], 2
    while True:
        assert data[at] == 0xFF
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        parts.append(data[at : at + 2 + length])
        at += 2 + length
        if marker == 0xDA:  # start of scan: the compressed pixels follow
            parts.append(data[at:])
            return parts


def is_xmp_segment(segment: bytes) -> bool:
    return segment[:2] == b"\xff\xe1" and segment[4:].startswith(XMP_APP1_HEADER)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk with its length and CRC) for each chunk of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append((data[at + 4 : at + 8], data[at : at + 12 + length]))
        at += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(FourCC, payload) for each chunk of a WebP (RIFF) file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", "not a WebP"
    chunks, at = [], 12
    while at < len(data):
        length = int.from_bytes(data[at + 4 : at + 8], "little")
        chunks.append((data[at : at + 4], data[at + 8 : at + 8 + length]))
        at += 8 + length + (length & 1)
    return chunks


def xmp_packet(data: bytes) -> bytes | None:
    """The XMP packet where the container keeps it, or None."""
    if data[:2] == b"\xff\xd8":
        for segment in jpeg_segments(data)[:-1]:
            if is_xmp_segment(segment):
                return segment[4 + len(XMP_APP1_HEADER) :]
        return None
    if data[:4] == b"\x89PNG":
        for kind, chunk in png_chunks(data):
            body = chunk[8:-4]
            if kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00"):
                # keyword, NUL, compression flag, method, language tag NUL, translated NUL, text
                keyword_end = body.index(b"\x00")
                assert body[keyword_end + 1] == 0, "a compressed XMP packet"
                rest = body[keyword_end + 3 :]
                rest = rest[rest.index(b"\x00") + 1 :]
                return rest[rest.index(b"\x00") + 1 :]
        return None
    for fourcc, payload in webp_chunks(data):
        if fourcc == b"XMP ":
            return payload
    return None


def iptc_properties(data: bytes) -> dict[str, str]:
    """The IPTC Extension properties in the image's XMP, by local name (``DigitalSourceType``)."""
    packet = xmp_packet(data)
    if packet is None:
        return {}
    # Our own files, made in the test: no hostile XML to defuse.
    root = ET.fromstring(packet)  # noqa: S314
    found: dict[str, str] = {}
    for description in root.iter(f"{{{RDF}}}Description"):
        for name, value in description.attrib.items():
            if name.startswith(f"{{{IPTC_EXT}}}"):
                found[name.removeprefix(f"{{{IPTC_EXT}}}")] = value
        for child in description:
            if child.tag.startswith(f"{{{IPTC_EXT}}}"):
                found[child.tag.removeprefix(f"{{{IPTC_EXT}}}")] = child.text or ""
    return found


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with PILImage.open(io.BytesIO(data)) as picture:
        return picture.mode, picture.size, picture.tobytes()


def small_jpeg() -> bytes:
    """A real (8x8) JPEG: delivered images are marked before they are stored, so a stand-in for
    one must be an image exiv2 can read."""
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8), "teal").save(out, "JPEG")
    return out.getvalue()
