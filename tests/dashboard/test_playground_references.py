"""Reference images in the playground: files and gallery picks, checked with the API's rules and
words, priced live as the quote prices them, charged what was quoted, and shown (privately) on
the generation's card, its gallery tile and its image page."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from billing import services as billing
from dashboard.forms import TIMES
from generation import services
from generation.models import Generation, Image, InputImage
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, heic, picture

# Every test here sees on_commit callbacks run at once (tests/dashboard/conftest.py).
pytestmark = pytest.mark.usefixtures("commits_at_once")

URL = "/dashboard/playground/"
QUOTE = f"{URL}quote/"
HTMX = {"HX-Request": "true"}
TOTAL = re.compile(r"<strong>(\d+) credits</strong>")
ERRORS = re.compile(r'<p class="error" role="alert">(.*?)</p>')


def made_by_api(client, key, prompt):
    """One image in the gallery of the key's owner."""
    response = client.post(
        "/v1/images/generations",
        json.dumps({"model": "seedream-4-0", "prompt": prompt, "size": "1024x1024"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content
    return Image.objects.get(generation__public_id=response.json()["id"])


@pytest.fixture
def my_image(client, owner_key):
    return made_by_api(client, owner_key, "my lantern")


@pytest.fixture
def their_image(client, outsider, api_key_factory):
    return made_by_api(client, api_key_factory(outsider).raw_key, "their secret")


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def form(**overrides):
    return {"prompt": "make it a watercolour", "model": "seedream-4-0", "size": "2048x2048",
            "n": "1", **overrides}  # fmt: skip


def total_of(page: str) -> int:
    found = TOTAL.search(page)
    assert found, page
    return int(found.group(1))


def quoted(client, **params) -> int:
    page = client.get(QUOTE, params).content.decode()
    return total_of(page)


# --- what the form offers ---------------------------------------------------------------------


def test_the_form_shows_the_models_limits_next_to_the_input(signed_in):
    four = signed_in.get(URL).content.decode()
    pro = signed_in.get(URL, {"model": "seedream-5-0-pro"}, headers=HTMX).content.decode()

    assert 'enctype="multipart/form-data"' in four
    assert 'type="file" name="reference_files"' in four and " multiple" in four
    assert 'accept="image/jpeg,.jpg,.jpeg,image/png,.png,image/webp,.webp' in four
    assert (
        "Seedream 4.0 takes up to 14 images: JPEG, PNG, WebP, BMP, TIFF or GIF, at most 10 MB "
        "and 36 megapixels each." in four
    )
    assert "Seedream 5.0 Pro takes up to 10 images" in pro and "at most 30 MB" in pro
    assert 'data-max-count="10"' in pro and 'data-max-bytes="31457280"' in pro
    assert "js/playground.js" in four


def test_pro_offers_heic_but_not_for_a_split(signed_in):
    pro = signed_in.get(URL, {"model": "seedream-5-0-pro"}, headers=HTMX).content.decode()
    split = signed_in.get(
        URL, {"model": "seedream-5-0-pro", "make": "layers"}, headers=HTMX
    ).content.decode()

    assert "JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC or HEIF, at most 30 MB" in pro
    assert "image/heic,.heic,image/heif,.heif" in pro
    assert 'data-formats="jpeg png webp bmp tiff gif heic heif"' in pro
    assert "A split takes one image: JPEG, PNG, WebP, BMP, TIFF or GIF, at most 30 MB" in split


def test_a_heic_file_on_pro_is_kept_and_shown_as_a_thumbnail(signed_in, sent):
    photo = heic(BLUE)

    response = signed_in.post(
        URL,
        form(model="seedream-5-0-pro", size="1024x1024",
             reference_files=[upload("IMG_0001.HEIC", photo, "image/heic")]),
        headers=HTMX,
    )  # fmt: skip

    assert response.status_code == 200, response.content
    kept = InputImage.objects.get()
    assert (kept.content_type, kept.file.read()) == ("image/heic", photo)
    thumbnail = signed_in.get(f"/dashboard/inputs/{kept.token}/thumbnail/")
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    assert f"/dashboard/inputs/{kept.token}/thumbnail/" in response.content.decode()


def test_a_heic_file_is_refused_by_name_where_the_model_takes_none(signed_in, sent):
    response = signed_in.post(
        URL, form(reference_files=[upload("IMG_0001.HEIC", heic(), "image/heic")]), headers=HTMX
    )

    assert ERRORS.findall(response.content.decode()) == [
        "&#x27;IMG_0001.HEIC&#x27; is a HEIF image; seedream-4-0 takes reference images in "
        "jpeg, png, webp, bmp, tiff, gif."
    ]
    assert sent == [] and not InputImage.objects.exists()


def test_a_model_that_takes_no_references_says_so_and_offers_no_input(signed_in, my_image):
    page = signed_in.get(URL, {"model": "seedream-3-0"}, headers=HTMX).content.decode()

    assert "Seedream 3.0 does not take reference images. Models that do: Seedream 4.0" in page
    assert 'type="file"' not in page
    assert 'name="gallery_references"' not in page


def test_the_newest_gallery_images_are_offered_as_picks_and_only_the_owners(
    signed_in, my_image, their_image
):
    page = signed_in.get(URL).content.decode()

    assert f'name="gallery_references" value="{my_image.token}"' in page
    assert their_image.token not in page and "their secret" not in page


def test_an_edit_only_model_is_offered_and_asks_for_a_reference(signed_in, sent):
    page = signed_in.get(URL).content.decode()
    refused = signed_in.post(
        URL, form(model="seededit-3-0", size="adaptive"), headers=HTMX
    ).content.decode()

    assert '<option value="seededit-3-0">SeedEdit 3.0</option>' in page
    assert "seededit-3-0 only edits images" in refused
    assert sent == []


# --- submitting ---------------------------------------------------------------------------------


def test_files_and_gallery_picks_are_submitted_in_order_and_kept(
    signed_in, owner, sent, submitted, my_image
):
    red, green = picture(RED), picture(GREEN, (80, 60), "JPEG")
    mine = my_image.file.open("rb").read()

    response = signed_in.post(
        URL,
        form(
            gallery_references=[my_image.token],
            reference_files=[upload("red.png", red), upload("green.jpg", green, "image/jpeg")],
        ),
        headers=HTMX,
    )

    assert response.status_code == 200, response.content
    (spec,) = submitted
    # Gallery picks first, then the files in the order chosen.
    assert [r.data for r in spec.references] == [mine, red, green]
    assert [r.image_format for r in spec.references] == ["jpeg", "png", "jpeg"]
    generation = Generation.objects.get(source="playground")
    assert generation.params["references"] == 3
    kept = list(generation.inputs.order_by("index"))
    assert [i.file.read() for i in kept] == [mine, red, green]
    assert sent == [generation.pk]
    # The new card shows them, in order, from the owner-only view.
    card = response.content.decode()
    urls = [f"/dashboard/inputs/{i.token}/thumbnail/" for i in kept]
    assert all(url in card for url in urls)
    assert [card.index(url) for url in urls] == sorted(card.index(url) for url in urls)


def test_without_javascript_a_multipart_post_with_files_redirects(signed_in, sent):
    response = signed_in.post(URL, form(reference_files=[upload("red.png", picture(RED))]))

    assert response.status_code == 302
    assert InputImage.objects.count() == 1
    page = signed_in.get(URL).content.decode()
    assert f"/dashboard/inputs/{InputImage.objects.get().token}/thumbnail/" in page


# One byte past Seedream 4.0's 10 MiB (the size is checked before anything is decoded).
BIG = picture(RED) + bytes(10 * 1024 * 1024 + 1 - len(picture(RED)))


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"reference_files": [upload(f"{i}.png", picture(RED)) for i in range(15)]},
            "reference_files",
            "15 reference images were sent; seedream-4-0 takes at most 14.",
        ),
        (
            {"reference_files": [upload("notes.png", b"just some text\n")]},
            "reference_files",
            "&#x27;notes.png&#x27; is not an image it can read; seedream-4-0 takes reference "
            "images in jpeg, png, webp, bmp, tiff, gif.",
        ),
        (
            {"model": "seededit-3-0", "size": "adaptive",
             "reference_files": [upload("a.webp", picture(RED, image_format="WEBP"))]},
            "reference_files",
            "&#x27;a.webp&#x27; is a WEBP image; seededit-3-0 takes reference images in jpeg, png.",
        ),
        (
            {"reference_files": [upload("big.png", BIG)]},
            "reference_files",
            "&#x27;big.png&#x27; is 10,485,761 bytes; seedream-4-0 takes reference images of "
            "at most 10,485,760 bytes.",
        ),
        (
            {"reference_files": [upload("huge.png", picture(RED, (10_000, 6_000)))]},
            "reference_files",
            "&#x27;huge.png&#x27; is 10000x6000 (60,000,000 pixels); seedream-4-0 takes "
            "reference images of at most 36,000,000 pixels.",
        ),
        (
            {"reference_files": [upload("thin.png", picture(RED, (14, 200)))]},
            "reference_files",
            "each side of a reference image must be longer than 14 pixels",
        ),
        (
            {"model": "seedream-3-0", "size": "1024x1024",
             "reference_files": [upload("red.png", picture(RED))]},
            "reference_files",
            "seedream-3-0 does not take reference images. Models that edit: seedream-4-0",
        ),
    ],
    ids=["too-many", "not-an-image", "wrong-format", "too-many-bytes", "too-many-pixels",
         "too-small", "model-takes-none"],
)  # fmt: skip
def test_each_bad_reference_is_refused_on_its_field_with_the_apis_words_and_costs_nothing(
    signed_in, owner, sent, overrides, field, message
):
    response = signed_in.post(URL, form(**overrides), headers=HTMX)

    assert response["HX-Retarget"] == "#playground-form"
    page = response.content.decode()
    assert message in page
    assert 'class="field references has-error"' in page
    assert not Generation.objects.exists() and not InputImage.objects.exists()
    assert sent == []
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize(
    "data",
    [b"just some text\n", picture(RED, (10_000, 6_000)), picture(RED, (2000, 100))],
    ids=["not-an-image", "too-many-pixels", "aspect"],
)
def test_the_form_says_what_the_api_says_naming_the_file(signed_in, owner_key, sent, data):
    api = signed_in.post(
        "/v1/images/edits",
        {"model": "seedream-4-0", "prompt": "x", "size": "1K", "image": upload("a.png", data)},
        headers={"Authorization": f"Bearer {owner_key}"},
    ).json()["error"]["message"]

    page = signed_in.post(
        URL, form(reference_files=[upload("holiday.png", data)]), headers=HTMX
    ).content.decode()

    assert api.startswith("'image' ")
    assert api.replace("'image'", "&#x27;holiday.png&#x27;") in page


def test_every_bad_file_is_named_not_only_the_first(signed_in, sent):
    files = [upload("a.png", b"text"), upload("ok.png", picture(RED)), upload("b.png", b"more")]

    page = signed_in.post(URL, form(reference_files=files), headers=HTMX).content.decode()

    assert "&#x27;a.png&#x27; is not an image" in page
    assert "&#x27;b.png&#x27; is not an image" in page
    assert "ok.png" not in page
    assert not Generation.objects.exists()


# --- the owner's gallery, and nobody else's ------------------------------------------------------


def test_use_as_reference_pre_picks_the_image_and_prices_it(signed_in, my_image):
    detail = signed_in.get(f"/dashboard/gallery/{my_image.token}/").content.decode()
    assert f'href="/dashboard/playground/?ref={my_image.token}">Use as reference</a>' in detail

    page = signed_in.get(URL, {"ref": my_image.token, "model": "seedream-5-0-pro",
                               "size": "1K"}).content.decode()  # fmt: skip

    assert f'value="{my_image.token}" checked' in page
    assert 'id="reference-count" value="1"' in page
    assert "and 1 reference image, free" in page  # 5.0 Pro's first reference is free


def test_an_outsiders_gallery_token_is_refused_as_if_it_did_not_exist(
    client, outsider, my_image, sent
):
    client.force_login(outsider)

    theirs = client.get(URL, {"ref": my_image.token})
    nobodys = client.get(URL, {"ref": "tok-that-does-not-exist"})
    posted = client.post(URL, form(gallery_references=[my_image.token]), headers=HTMX)
    posted_nobodys = client.post(URL, form(gallery_references=["nope"]), headers=HTMX)

    assert theirs.status_code == nobodys.status_code == 404
    page = posted.content.decode()
    errors = ERRORS.findall(page)
    assert errors == [f"Select a valid choice. {my_image.token} is not one of the available "
                      "choices."]  # fmt: skip
    assert [e.replace(my_image.token, "X") for e in errors] == [
        e.replace("nope", "X") for e in ERRORS.findall(posted_nobodys.content.decode())
    ]
    assert f'value="{my_image.token}"' not in page and "my lantern" not in page
    assert not Generation.objects.filter(user=outsider).exists()
    assert sent == []


@pytest.fixture
def kept_input(signed_in, sent):
    signed_in.post(URL, form(reference_files=[upload("red.png", picture(RED))]), headers=HTMX)
    return InputImage.objects.get()


def test_the_owner_gets_a_reference_image_and_its_thumbnail_privately(signed_in, kept_input):
    original = signed_in.get(f"/dashboard/inputs/{kept_input.token}/")
    thumbnail = signed_in.get(f"/dashboard/inputs/{kept_input.token}/thumbnail/")

    assert original.status_code == 200
    assert original["Content-Type"] == "image/png"
    assert b"".join(original.streaming_content) == picture(RED)
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    webp = b"".join(thumbnail.streaming_content)
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    for response in (original, thumbnail):
        assert "private" in response["Cache-Control"]
        assert "public" not in response["Cache-Control"]


@pytest.mark.parametrize("suffix", ["", "thumbnail/"])
def test_an_outsider_gets_404_for_anothers_reference_image(client, outsider, kept_input, suffix):
    client.force_login(outsider)

    assert client.get(f"/dashboard/inputs/{kept_input.token}/{suffix}").status_code == 404
    assert client.get(f"/dashboard/inputs/nope/{suffix}").status_code == 404


def test_a_visitor_is_sent_to_log_in_for_a_reference_image(client, kept_input):
    client.logout()
    response = client.get(f"/dashboard/inputs/{kept_input.token}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- the price ----------------------------------------------------------------------------------


def test_the_quote_counts_references_within_the_models_limit(signed_in):
    pro = {"model": "seedream-5-0-pro", "size": "1K", "n": "2"}
    rule = billing.price_rule("seedream-5-0-pro")
    per_reference = 2 * rule.reference_credits  # each paid reference, per image asked for

    none = quoted(signed_in, **pro)
    one = quoted(signed_in, **pro, references=1)
    three = quoted(signed_in, **pro, references=3)
    too_many = quoted(signed_in, **pro, references=99)
    mangled = quoted(signed_in, **pro, references="lots")

    assert rule.free_references == 1 and rule.reference_credits > 0
    assert one == none == mangled
    assert three == none + 2 * per_reference
    assert too_many == none + 9 * per_reference  # bounded to the 10 it takes
    page = signed_in.get(QUOTE, {**pro, "references": 3}).content.decode()
    assert (
        f"and 3 reference images (1 free, 2 at {rule.reference_credits} credits per image asked "
        f"for: {2 * per_reference} credits)" in page
    )


def test_a_model_that_takes_no_references_is_priced_without_them(signed_in):
    plain = {"model": "seedream-3-0", "size": "1024x1024"}
    assert quoted(signed_in, **plain, references=3) == quoted(signed_in, **plain)


def test_the_live_price_with_references_is_the_apis_quote(signed_in, owner_key):
    images = [{"image_url": data_url(picture(c))} for c in (RED, GREEN, BLUE)]
    body = {"model": "seedream-5-0-pro", "prompt": "a collage", "size": "1K", "images": images}
    api = signed_in.post(
        "/v1/images/quote",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {owner_key}"},
    ).json()

    assert quoted(signed_in, model="seedream-5-0-pro", size="1K", references=3) == api["credits"]


def test_a_refused_form_prices_the_references_it_carried(signed_in, sent, my_image):
    page = signed_in.post(
        URL,
        form(prompt="", model="seedream-5-0-pro", size="1K",
             gallery_references=[my_image.token],
             reference_files=[upload("a.png", picture(RED)), upload("b.png", picture(BLUE))]),
        headers=HTMX,
    ).content.decode()  # fmt: skip

    assert 'id="reference-count" value="3"' in page
    assert "and 3 reference images (1 free, 2 at" in page
    assert f'value="{my_image.token}" checked' in page


def test_the_forms_refresh_keeps_the_picks_and_the_count(signed_in, my_image):
    page = signed_in.get(
        URL,
        {"model": "seedream-5-0-pro", "gallery_references": my_image.token, "references": "3"},
        headers=HTMX,
    ).content.decode()

    assert f'value="{my_image.token}" checked' in page
    assert 'id="reference-count" value="3"' in page
    assert "and 3 reference images" in page


def test_a_pro_edit_with_three_references_is_charged_exactly_its_quote(signed_in, owner, sent):
    """5.0 Pro: the first reference free, the other two paid; the worker runs it, and what the
    balance lost is what the live price said."""
    price = quoted(signed_in, model="seedream-5-0-pro", size="1K", n="1", references=3)
    without = quoted(signed_in, model="seedream-5-0-pro", size="1K", n="1")
    files = [upload(f"{i}.png", picture(c)) for i, c in enumerate((RED, GREEN, BLUE))]

    signed_in.post(
        URL, form(model="seedream-5-0-pro", size="1K", reference_files=files), headers=HTMX
    )
    generation = Generation.objects.get()
    assert generation.reserved_credits == price
    assert services.run_queued_generation(generation.pk).status == "done"

    generation.refresh_from_db()
    assert (generation.status, generation.images_delivered) == ("succeeded", 1)
    assert price == without + 2 * billing.price_rule("seedream-5-0-pro").reference_credits
    assert 1000 - assert_ledger_balanced(owner) == price == generation.charged_credits


# --- where the inputs show ------------------------------------------------------------------


def test_the_gallery_tile_and_the_image_page_show_the_inputs_in_order(signed_in, sent):
    files = [upload("r.png", picture(RED)), upload("g.png", picture(GREEN))]
    signed_in.post(URL, form(reference_files=files), headers=HTMX)
    generation = Generation.objects.get()
    services.run_queued_generation(generation.pk)
    image = generation.images.get()
    thumbnails = [
        f"/dashboard/inputs/{i.token}/thumbnail/" for i in generation.inputs.order_by("index")
    ]

    grid = signed_in.get("/dashboard/gallery/").content.decode()
    detail = signed_in.get(f"/dashboard/gallery/{image.token}/").content.decode()
    card = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()

    for page in (grid, detail, card):
        positions = [page.index(url) for url in thumbnails]
        assert positions == sorted(positions)
    assert "made from 2 references" in grid
    assert "Made from" in detail and f"Reference image 2 (64 {TIMES} 48)" in detail
    first = generation.inputs.get(index=0)
    assert f'href="/dashboard/inputs/{first.token}/"' in detail
