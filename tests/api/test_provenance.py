"""Through POST /v1/images/generations: the image we host and the b64_json we answer are the same
marked bytes, with the IPTC provenance in their XMP (and a C2PA manifest when signing), never the
prompt. An image that cannot be marked is not delivered, and not charged."""

from __future__ import annotations

import base64
import io
import json
import uuid

import c2pa
import pytest

from generation import dev_signer, provenance
from generation.models import Generation, Image
from tests.support.money import assert_ledger_balanced
from tests.support.provenance import TRAINED_ALGORITHMIC_MEDIA, iptc_properties
from tests.support.responses import json_of

pytestmark = pytest.mark.smoke

EXPECTED = {
    "DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
    "AISystemUsed": "Seedream 4.0",
    "AISystemVersionUsed": "seedream-4-0-250828",
}


@pytest.fixture(autouse=True)
def _no_signer(settings):
    settings.C2PA_SIGNING_KEY = settings.C2PA_CERTIFICATE = ""
    settings.C2PA_DEVELOPMENT_SIGNER = False


def generate(client, key, **body):
    body = {"model": "seedream-4-0", "size": "1024x1024", **body}
    return client.post(
        "/v1/images/generations",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def fetch(client, url):
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def secret_prompt() -> str:
    return f"[sim:photo] my private idea zq{uuid.uuid4().hex}"


def test_the_hosted_image_carries_the_provenance_and_not_the_prompt(client, owner_key):
    prompt = secret_prompt()

    response = generate(client, owner_key, prompt=prompt)

    assert response.status_code == 200, response.content
    data = fetch(client, response.json()["data"][0]["url"])
    assert iptc_properties(data) == EXPECTED
    assert prompt.split()[-1].encode() not in data
    # The row counts the bytes stored, the marked ones.
    assert Image.objects.get().bytes == len(data)


def test_the_b64_json_answer_is_the_hosted_marked_file(client, owner_key):
    prompt = secret_prompt()

    response = generate(client, owner_key, prompt=prompt, n=2, response_format="b64_json")

    assert response.status_code == 200, response.content
    answered = [base64.b64decode(item["b64_json"]) for item in json_of(response)["data"]]
    for data in answered:
        assert iptc_properties(data) == EXPECTED
        assert prompt.split()[-1].encode() not in data
    stored = sorted(
        fetch(client, f"/img/{image.token}.jpg") for image in Image.objects.order_by("index")
    )
    assert sorted(answered) == stored
    assert sorted(i.bytes for i in Image.objects.all()) == sorted(len(d) for d in answered)


def test_seedream_3_images_name_their_own_model(client, owner_key):
    response = generate(client, owner_key, model="seedream-3-0", prompt="a bonsai")

    data = fetch(client, response.json()["data"][0]["url"])
    assert iptc_properties(data) == {
        "DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "AISystemUsed": "Seedream 3.0",
        "AISystemVersionUsed": "seedream-3-0-t2i-250415",
    }


def test_the_gallery_thumbnail_carries_the_provenance_too(client, owner_key):
    generate(client, owner_key, prompt="a lighthouse")
    image = Image.objects.get()

    response = client.get(f"/img/t/{image.token}.webp")

    assert response.status_code == 200
    assert iptc_properties(b"".join(response.streaming_content)) == EXPECTED


def test_with_a_signer_the_hosted_image_and_the_b64_json_carry_a_c2pa_manifest(
    client, owner_key, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    settings.C2PA_DEVELOPMENT_SIGNER = True
    prompt = secret_prompt()

    url = generate(client, owner_key, prompt=prompt).json()["data"][0]["url"]
    b64 = json_of(generate(client, owner_key, prompt=prompt, response_format="b64_json"))

    root = (tmp_path / dev_signer.FOLDER / "ca.pem").read_text()
    trust = c2pa.Context(c2pa.Settings.from_dict({"trust": {"trust_anchors": root}}))
    for data in (fetch(client, url), base64.b64decode(b64["data"][0]["b64_json"])):
        assert iptc_properties(data) == EXPECTED
        assert prompt.split()[-1].encode() not in data
        with c2pa.Reader("image/jpeg", io.BytesIO(data), context=trust) as reader:
            assert reader.get_validation_state() == "Trusted"
            manifest = reader.get_active_manifest()
        (action,) = [
            action
            for assertion in manifest["assertions"]
            if assertion["label"].startswith("c2pa.actions")
            for action in assertion["data"]["actions"]
        ]
        assert action["action"] == "c2pa.created"
        assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


def test_an_image_that_cannot_be_marked_is_not_hosted_nor_charged(
    client, owner, owner_key, monkeypatch
):
    def refuse(data, made_by):
        raise provenance.ProvenanceError("could not write the XMP: corrupted image metadata")

    monkeypatch.setattr(provenance, "write_xmp", refuse)

    response = generate(client, owner_key, prompt="a lighthouse")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_error"
    assert "not charged" in error["message"]
    assert Generation.objects.get().charged_credits == 0
    assert not Image.objects.exists()
    assert assert_ledger_balanced(owner) == 1000
