"""Every image we host carries its provenance: IPTC XMP in each container, a signed C2PA manifest
when a signer is configured, the pixels untouched and the prompt never written."""

from __future__ import annotations

import datetime
import io
import logging
import os
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.checks import Error, Warning
from PIL import Image as PILImage
from PIL import ImageCms

from generation import dev_signer, provenance
from generation.checks import c2pa_signer_is_the_operators, c2pa_signer_signs
from generation.thumbnails import render_thumbnail
from simulator.images import ImageSpec, render_jpeg
from tests.support.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    iptc_properties,
    is_xmp_segment,
    jpeg_segments,
    pixels,
    png_chunks,
    webp_chunks,
)

pytestmark = pytest.mark.smoke

SEEDREAM_4 = provenance.MadeBy("seedream-4-0", "Seedream 4.0", "seedream-4-0-250828")
EXPECTED = {
    "DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
    "AISystemUsed": "Seedream 4.0",
    "AISystemVersionUsed": "seedream-4-0-250828",
}


@pytest.fixture(autouse=True)
def _no_signer(settings):
    settings.C2PA_SIGNING_KEY = settings.C2PA_CERTIFICATE = ""
    settings.C2PA_DEVELOPMENT_SIGNER = False


@pytest.fixture
def dev_signing(settings, tmp_path):
    """The development signer, made in a fresh DATA_DIR; returns its root certificate (PEM)."""
    settings.DATA_DIR = tmp_path
    settings.C2PA_DEVELOPMENT_SIGNER = True
    dev_signer.key_and_chain(tmp_path)
    return (tmp_path / dev_signer.FOLDER / "ca.pem").read_text()


def photo(size=(512, 384)) -> bytes:
    """A simulator photograph (a detailed baseline JPEG, as Seedream's)."""
    spec = ImageSpec.for_prompt(
        "[sim:photo] a lighthouse", seed=1, size=size, watermark=False, index=0, kind="photo"
    )
    return render_jpeg(spec)


def encoded(image_format: str, **options) -> bytes:
    with PILImage.open(io.BytesIO(photo())) as opened:
        picture = opened.convert("RGBA")
    picture.putalpha(160)  # a real alpha channel, which PNG and WebP keep
    out = io.BytesIO()
    picture.save(out, image_format, **options)
    return out.getvalue()


def manifest_store(data: bytes, mime: str, trust_anchors: str | None = None) -> c2pa.Reader:
    config = {"trust": {"trust_anchors": trust_anchors}} if trust_anchors else {}
    context = c2pa.Context(c2pa.Settings.from_dict(config))
    return c2pa.Reader(mime, io.BytesIO(data), context=context)


def created_action(reader: c2pa.Reader) -> dict:
    manifest = reader.get_active_manifest()
    actions = [
        action
        for assertion in manifest["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for action in assertion["data"]["actions"]
    ]
    assert [a["action"] for a in actions] == ["c2pa.created"]
    return actions[0]


# --- XMP, per container ---------------------------------------------------------------------


def test_a_jpeg_gets_its_xmp_in_an_app1_segment_and_every_other_byte_is_kept():
    with PILImage.open(io.BytesIO(photo())) as picture:
        exif = PILImage.Exif()
        exif[0x0110] = "camera model"
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc)
    original = out.getvalue()

    marked = provenance.mark(original, "jpeg", SEEDREAM_4)

    segments = jpeg_segments(marked)
    assert sum(is_xmp_segment(s) for s in segments) == 1
    # No generation loss: take the XMP segment out and the file is the original, byte for byte
    # (the same JFIF, EXIF, ICC profile, tables and compressed scan).
    assert b"\xff\xd8" + b"".join(s for s in segments if not is_xmp_segment(s)) == original
    assert pixels(marked) == pixels(original)
    assert iptc_properties(marked) == EXPECTED


def test_a_png_gets_an_itxt_chunk_and_keeps_its_pixels_and_alpha():
    original = encoded("PNG")

    marked = provenance.mark(original, "png", SEEDREAM_4)

    chunks = png_chunks(marked)
    added = [chunk for chunk in chunks if chunk not in png_chunks(original)]
    assert [kind for kind, _ in added] == [b"iTXt"]
    assert added[0][1][8:].startswith(b"XML:com.adobe.xmp\x00")
    # Every original chunk is still there, in order, untouched.
    assert [chunk for chunk in chunks if chunk not in added] == png_chunks(original)
    assert pixels(marked) == pixels(original)
    assert pixels(marked)[0] == "RGBA"
    assert iptc_properties(marked) == EXPECTED


@pytest.mark.parametrize(
    "options",
    [{"quality": 80}, {"lossless": True}],
    ids=["lossy with alpha", "lossless with alpha"],
)
def test_a_webp_gets_an_xmp_chunk_and_the_vp8x_flag_and_keeps_its_pixels(options):
    original = encoded("WEBP", **options)

    marked = provenance.mark(original, "webp", SEEDREAM_4)

    chunks = dict(webp_chunks(marked))
    assert b"XMP " in chunks
    flags = chunks[b"VP8X"][0]
    assert flags & 0x04, "the VP8X header says there is XMP"
    assert flags & 0x10, "and still says there is alpha"
    for fourcc, payload in webp_chunks(original):
        if fourcc in (b"VP8 ", b"VP8L", b"ALPH"):
            assert chunks[fourcc] == payload, "the compressed picture is untouched"
    assert pixels(marked) == pixels(original)
    assert iptc_properties(marked) == EXPECTED


def test_the_digital_source_type_is_the_configured_one(settings):
    settings.PROVENANCE_DIGITAL_SOURCE_TYPE = (
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    )

    marked = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    assert iptc_properties(marked)["DigitalSourceType"].endswith(
        "/compositeWithTrainedAlgorithmicMedia"
    )


def test_the_model_is_named_from_the_catalog():
    assert provenance.MadeBy.for_model("seedream-4-0", "seedream-4-0-250828") == SEEDREAM_4
    # A model no longer in the catalog is still named, by its id.
    assert provenance.MadeBy.for_model("seedream-2-0", "x-1") == provenance.MadeBy(
        "seedream-2-0", "seedream-2-0", "x-1"
    )


def test_xmp_values_are_written_as_text_whatever_they_hold():
    made_by = provenance.MadeBy("m", 'Seedream <4.0> & "friends"', "id-1")

    marked = provenance.mark(photo(), "jpeg", made_by)

    assert iptc_properties(marked)["AISystemUsed"] == 'Seedream <4.0> & "friends"'


def test_what_is_not_an_image_of_ours_is_refused_rather_than_hosted_unmarked():
    with pytest.raises(provenance.ProvenanceError):
        provenance.mark(b"\xff\xd8\xff\xe0 not really a JPEG", "jpeg", SEEDREAM_4)
    with pytest.raises(provenance.ProvenanceError, match="cannot mark a 'gif' image"):
        provenance.mark(photo(), "gif", SEEDREAM_4)


def test_a_thumbnail_carries_its_originals_xmp():
    original = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    thumbnail = render_thumbnail(original, 128)

    assert thumbnail[:4] == b"RIFF"
    assert iptc_properties(thumbnail) == EXPECTED
    assert dict(webp_chunks(thumbnail))[b"VP8X"][0] & 0x04


# --- C2PA -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "mime"),
    [("jpeg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")],
)
def test_a_signed_manifest_says_a_trained_model_created_the_image(dev_signing, image_format, mime):
    original = photo() if image_format == "jpeg" else encoded(image_format.upper())

    marked = provenance.mark(original, image_format, SEEDREAM_4)

    with manifest_store(marked, mime, trust_anchors=dev_signing) as reader:
        # Trusted: its signature, its certificate chain up to our development root (trusted
        # here, as an operator's validators would trust their CA), and its hash of the file.
        assert reader.get_validation_state() == "Trusted"
        action = created_action(reader)
        manifest = reader.get_active_manifest()
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"]["name"] == "Seedream API"
    assert "Seedream 4.0 (seedream-4-0-250828)" in action["description"]
    assert manifest["signature_info"]["common_name"] == "Seedream API development signer"
    # Signed last: the XMP is still there and the pixels are the same.
    assert iptc_properties(marked) == EXPECTED
    assert pixels(marked) == pixels(original)


def test_without_the_operators_root_a_validator_reads_a_valid_but_untrusted_manifest(dev_signing):
    marked = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    with manifest_store(marked, "image/jpeg") as reader:
        assert reader.get_validation_state() == "Valid"
        failures = reader.get_validation_results()["activeManifest"]["failure"]
    assert [f["code"] for f in failures] == ["signingCredential.untrusted"]


def test_a_byte_changed_after_signing_breaks_the_manifest(dev_signing):
    marked = bytearray(provenance.mark(photo(), "jpeg", SEEDREAM_4))
    marked[-100] ^= 0xFF

    with manifest_store(bytes(marked), "image/jpeg", trust_anchors=dev_signing) as reader:
        assert reader.get_validation_state() == "Invalid"


def test_the_operators_key_and_certificate_sign(settings, tmp_path):
    key_pem, signer_pem, root_pem = dev_signer.make_pems()  # as an operator's CA would issue
    settings.C2PA_SIGNING_KEY = key_pem
    # One line with escaped line breaks, as some env files hold it.
    settings.C2PA_CERTIFICATE = signer_pem.replace("\n", "\\n")

    marked = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    with manifest_store(marked, "image/jpeg", trust_anchors=root_pem) as reader:
        assert reader.get_validation_state() == "Trusted"
        assert created_action(reader)["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert not (tmp_path / dev_signer.FOLDER).exists()


def test_without_a_signer_there_is_xmp_and_no_manifest():
    marked = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    assert iptc_properties(marked) == EXPECTED
    with pytest.raises(c2pa.C2paError):
        manifest_store(marked, "image/jpeg")


def test_a_signer_that_cannot_sign_leaves_the_xmp_and_says_why(settings, caplog):
    _, signer_pem, _ = dev_signer.make_pems()
    other_key, _, _ = dev_signer.make_pems()
    settings.C2PA_SIGNING_KEY = other_key  # not the certificate's key
    settings.C2PA_CERTIFICATE = signer_pem

    with caplog.at_level(logging.ERROR, logger="generation.provenance"):
        marked = provenance.mark(photo(), "jpeg", SEEDREAM_4)

    assert iptc_properties(marked) == EXPECTED
    with pytest.raises(c2pa.C2paError):
        manifest_store(marked, "image/jpeg")
    assert "could not sign a C2PA manifest" in caplog.text
    assert other_key.splitlines()[1] not in caplog.text, "the key never reaches the log"


def test_c2pa_refuses_a_self_signed_certificate_so_the_development_signer_has_a_root():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "self")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
        .not_valid_after(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]), False
        )
        .sign(key, hashes.SHA256())
    )
    signer = provenance.load_signing_key(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
    )

    with pytest.raises(c2pa.C2paError, match="certificate"):
        provenance.sign(photo(), "image/jpeg", SEEDREAM_4, signer)


def test_the_algorithm_follows_the_key():
    def algorithm(key):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return provenance.load_signing_key(pem, "-----BEGIN CERTIFICATE-----").algorithm

    assert algorithm(ec.generate_private_key(ec.SECP256R1())) == "es256"
    assert algorithm(ec.generate_private_key(ec.SECP384R1())) == "es384"
    assert algorithm(rsa.generate_private_key(public_exponent=65537, key_size=2048)) == "ps256"
    with pytest.raises(ValueError, match="C2PA signs with"):
        algorithm(ec.generate_private_key(ec.SECP256K1()))


def test_the_development_signer_is_made_once_and_its_key_kept_private(tmp_path):
    first = dev_signer.key_and_chain(tmp_path)
    folder = tmp_path / dev_signer.FOLDER
    # Another process that made its own at the same moment loses the race and keeps ours.
    dev_signer._make(folder)
    dev_signer.key_and_chain.cache_clear()

    assert dev_signer.key_and_chain(tmp_path) == first
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "key.pem", "signer.pem"]
    assert os.stat(folder / "key.pem").st_mode & 0o077 == 0
    assert [p for p in Path(tmp_path).iterdir() if p.name != dev_signer.FOLDER] == []


# --- System checks --------------------------------------------------------------------------


def test_the_deploy_check_warns_without_the_operators_signer(settings):
    (warning,) = c2pa_signer_is_the_operators(None)
    assert isinstance(warning, Warning) and warning.id == "api.W002"
    assert "XMP provenance marking only" in warning.msg

    settings.C2PA_DEVELOPMENT_SIGNER = True
    (warning,) = c2pa_signer_is_the_operators(None)
    assert "development C2PA key" in warning.msg

    key_pem, signer_pem, _ = dev_signer.make_pems()
    settings.C2PA_SIGNING_KEY, settings.C2PA_CERTIFICATE = key_pem, signer_pem
    assert c2pa_signer_is_the_operators(None) == []
    assert c2pa_signer_signs(None) == []


def test_a_configured_signer_that_cannot_sign_is_an_error(settings):
    key_pem, signer_pem, _ = dev_signer.make_pems()
    settings.C2PA_SIGNING_KEY, settings.C2PA_CERTIFICATE = key_pem, signer_pem.replace("M", "N")

    (error,) = c2pa_signer_signs(None)

    assert isinstance(error, Error) and error.id == "api.E001"
    assert key_pem.splitlines()[1] not in error.msg


# --- Our own insertion (no exiv2) for what Seedream delivers -----------------------------------


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_a_jpeg_or_png_without_xmp_is_marked_without_exiv2(image_format, monkeypatch):
    # exiv2 parses and rewrites the whole file (about 0.3 ms of the event loop per image):
    # what Seedream delivers gets a packet inserted instead.
    def no_exiv2(*args, **kwargs):
        raise AssertionError("exiv2 was used")

    monkeypatch.setattr(provenance.pyexiv2, "ImageData", no_exiv2)
    original = photo() if image_format == "jpeg" else encoded("PNG")

    marked = provenance.mark(original, image_format, SEEDREAM_4)

    assert iptc_properties(marked) == EXPECTED
    assert pixels(marked) == pixels(original)


def test_an_image_that_has_xmp_already_is_merged_by_exiv2_into_one_packet():
    first = provenance.mark(photo(), "jpeg", provenance.MadeBy("m", "Older", "older-1"))

    again = provenance.mark(first, "jpeg", SEEDREAM_4)

    assert sum(is_xmp_segment(s) for s in jpeg_segments(again)) == 1
    assert iptc_properties(again) == EXPECTED
