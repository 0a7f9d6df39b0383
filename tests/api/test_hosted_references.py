"""One of the customer's own hosted images as a reference, by the URL a /v1 answer gave it
(``<base>/img/<token>.<ext>``), without uploading it again: read from our storage, never fetched
(our own host may be a private address, and here is ``http://testserver``, which the fetcher
would refuse), and only the key's own account's. Another account's image, an unknown token, a
deleted file and an extension no URL serves are one and the same 400, with nothing charged."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import pytest
from django.core.files.storage import default_storage

from billing.models import LedgerEntry
from generation.models import Generation, Image, InputImage
from generation.references import HostedImages
from server.steps import Steps
from tests.support.money import assert_ledger_balanced

pytestmark = pytest.mark.smoke


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def post_json(client, key, path, body):
    return client.post(path, json.dumps(body), content_type="application/json", headers=auth(key))


def hosted(client, key, prompt="a lantern at dusk"):
    """An image made through /v1 for the key's account: its Image row and the URL answered."""
    response = post_json(client, key, "/v1/images/generations",
                         {"model": "seedream-4-0", "prompt": prompt, "size": "1K"})  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    return Image.objects.get(generation__public_id=body["id"]), body["data"][0]["url"]


def stored_bytes(image):
    with default_storage.open(image.file.name, "rb") as handle:
        return handle.read()


def sent_upstream(simulator_url, prompt):
    base = simulator_url.removesuffix("/api/v3")
    return httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["references"]


def kept_of(response):
    generation = Generation.objects.get(public_id=response.json()["id"])
    return [i.file.read() for i in InputImage.objects.filter(generation=generation)]


@pytest.fixture
def mine(client, owner_key):
    return hosted(client, owner_key)


def test_an_own_image_url_in_a_json_edit_is_read_from_storage_and_sent_upstream(
    client, owner, owner_key, mine, simulator_url
):
    image, url = mine
    assert url == f"http://testserver/img/{image.token}.jpg"  # what the answer linked
    data, prompt = stored_bytes(image), f"again {uuid.uuid4()}"
    body = {"model": "seedream-4-0", "prompt": prompt, "size": "1K",
            "images": [{"image_url": url}, {"image_url": {"url": url}}]}  # fmt: skip
    quoted = post_json(client, owner_key, "/v1/images/quote", body).json()
    before = assert_ledger_balanced(owner)

    response = post_json(client, owner_key, "/v1/images/edits", body)

    assert response.status_code == 200, response.content
    assert kept_of(response) == [data, data]
    assert sent_upstream(simulator_url, prompt) == [[hashlib.sha256(data).hexdigest()] * 2]
    assert before - assert_ledger_balanced(owner) == quoted["credits"]
    assert response.json()["credits_charged"] == quoted["credits"]


def test_an_own_image_url_is_taken_as_seedreams_image_in_a_generation(
    client, owner_key, mine, simulator_url
):
    image, url = mine
    prompt = f"generated from mine {uuid.uuid4()}"
    https_url = url.replace("http://", "https://")  # a proxy may end TLS before us

    response = post_json(client, owner_key, "/v1/images/generations",
                         {"model": "seedream-4-0", "prompt": prompt, "size": "1K",
                          "image": [https_url]})  # fmt: skip

    assert response.status_code == 200, response.content
    assert sent_upstream(simulator_url, prompt) == [
        [hashlib.sha256(stored_bytes(image)).hexdigest()]
    ]


def test_an_image_url_under_image_base_url_is_read_from_storage(
    client, owner_key, settings, simulator_url
):
    settings.IMAGE_BASE_URL = "https://cdn.example.invalid/seedream"
    image, url = hosted(client, owner_key)
    assert url == f"https://cdn.example.invalid/seedream/img/{image.token}.jpg"
    prompt = f"via the cdn {uuid.uuid4()}"

    response = post_json(client, owner_key, "/v1/images/edits",
                         {"model": "seedream-4-0", "prompt": prompt, "size": "1K",
                          "images": [{"image_url": url}]})  # fmt: skip

    assert response.status_code == 200, response.content
    assert sent_upstream(simulator_url, prompt) == [
        [hashlib.sha256(stored_bytes(image)).hexdigest()]
    ]


# --- refused: one answer, whatever the reason; nothing held, charged or kept ---------------------


@pytest.fixture
def theirs(client, outsider, api_key_factory):
    return hosted(client, api_key_factory(outsider).raw_key, "their secret")


def refusal(client, key, url, path="/v1/images/edits"):
    """The refused request's error, after checking nothing was charged or kept for it."""
    generations, entries = Generation.objects.count(), LedgerEntry.objects.count()
    inputs = InputImage.objects.count()
    if path == "/v1/images/edits":
        body = {"model": "seedream-4-0", "prompt": "x", "images": [{"image_url": url}]}
    else:
        body = {"model": "seedream-4-0", "prompt": "x", "image": url}

    response = post_json(client, key, path, body)

    assert response.status_code == 400, response.content
    assert (Generation.objects.count(), LedgerEntry.objects.count()) == (generations, entries)
    assert InputImage.objects.count() == inputs
    return response.json()["error"]


def test_another_accounts_image_unknown_and_deleted_ones_are_the_same_400(
    client, owner, owner_key, mine, theirs
):
    image, url = mine
    their_image, their_url = theirs
    balance = assert_ledger_balanced(owner)
    unknown = url.replace(image.token, "A" * len(image.token))
    wrong_extension = url.removesuffix(".jpg") + ".png"
    gone, gone_url = hosted(client, owner_key, "deleted by retention")
    default_storage.delete(gone.file.name)
    balance = assert_ledger_balanced(owner)

    errors = [
        refusal(client, owner_key, their_url),
        refusal(client, owner_key, unknown),
        refusal(client, owner_key, gone_url),
        refusal(client, owner_key, wrong_extension),
    ]

    param = "images[0].image_url"
    expected = {
        "message": f"'{param}' could not be read: it names none of your images stored here.",
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_image_url",
    }
    assert errors == [expected] * 4
    assert assert_ledger_balanced(owner) == balance
    # Their image was not read for anyone: the owner is not told it exists.
    assert their_image.token not in json.dumps(errors)


def test_the_generation_and_quote_paths_refuse_anothers_image_alike(client, owner_key, theirs):
    _, their_url = theirs

    generation = refusal(client, owner_key, their_url, "/v1/images/generations")
    quote = refusal(client, owner_key, their_url, "/v1/images/quote")

    assert generation == quote
    assert generation["param"] == "image" and generation["code"] == "invalid_image_url"


def test_an_image_deleted_by_its_owner_is_refused(client, owner_key, mine):
    image, url = mine
    Image.objects.filter(pk=image.pk).delete()

    error = refusal(client, owner_key, url)

    assert error["code"] == "invalid_image_url"


# --- what counts as our own URL ----------------------------------------------------------------

TOKEN = "abcdefghijklmnopqrstuv"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"http://testserver/img/{TOKEN}.jpg", (TOKEN, "jpg")),
        (f"HTTPS://TestServer/img/{TOKEN}.png", (TOKEN, "png")),
        (f"http://testserver:80/img/{TOKEN}.webp", (TOKEN, "webp")),
        (f"https://cdn.example.com/seedream/img/{TOKEN}.jpg", (TOKEN, "jpg")),
        (f"http://testserver/img/{TOKEN}.jpg?download=1", (TOKEN, "jpg")),
        # Not ours: fetched (or refused) as any other URL would be.
        (f"http://testserver:8080/img/{TOKEN}.jpg", None),
        (f"https://elsewhere.example/img/{TOKEN}.jpg", None),
        (f"https://testserver.example/img/{TOKEN}.jpg", None),
        (f"https://cdn.example.com/img/{TOKEN}.jpg", None),  # not under the CDN's path
        (f"https://cdn.example.com/other/img/{TOKEN}.jpg", None),
        (f"http://testserver/img/t/{TOKEN}.webp", None),  # a thumbnail
        (f"http://testserver/img/{TOKEN}.jpg/more", None),
        ("http://testserver/img/short.jpg", None),
        (f"http://user@testserver/img/{TOKEN}.jpg", None),
        (f"ftp://testserver/img/{TOKEN}.jpg", None),
        (f"http://testserver:99999/img/{TOKEN}.jpg", None),
        ("data:image/png;base64,AAAA", None),
    ],
)
def test_an_own_image_url_is_recognised_by_host_port_and_path(settings, url, named):
    settings.IMAGE_BASE_URL = "https://cdn.example.com/seedream"
    hosted_images = HostedImages(1, "http://testserver", Steps.inline())

    assert hosted_images.file_of(url) == named
