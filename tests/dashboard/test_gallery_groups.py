"""Sets and layer splits in the gallery: each is one tile (its first image, with a badge), its
image page shows the rest of the group (a set's strip, a split's stack with the boxes over the
base), and a split's layers download as a zip with a manifest. All made through the real API."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import gallery, views_gallery
from dashboard.layers import Box, box_on
from generation.models import Generation, Image
from tests.support.pictures import RED, data_url, picture

URL = "/dashboard/gallery/"
SOURCE = picture(RED, (768, 512), "JPEG")  # a split's picture has at least 512x512 pixels


def _post(client, key, path, body):
    response = client.post(
        path, json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert response.status_code == 200, response.content
    return list(Image.objects.filter(generation__public_id=response.json()["id"]).order_by("index"))


def plain(client, key, n=2):
    body = {"model": "seedream-4-0", "prompt": "a lantern", "size": "1024x1024", "n": n}
    return _post(client, key, "/v1/images/generations", body)


def a_set(client, key, made=3, most=4):
    """A set that may hold ``most`` images, of which the simulator makes ``made``."""
    body = {"model": "seedream-4-0", "prompt": f"a comic strip [sim:set-count={made}]",
            "size": "1K", "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": most}}  # fmt: skip
    return _post(client, key, "/v1/images/generations", body)


def a_split(client, key, layers=3):
    body = {"model": "seedream-5-0-pro", "layer_decomposition": True, "size": "1K",
            "prompt": f"the parts [sim:layers={layers}]", "max_layers": 4,
            "images": [{"image_url": data_url(SOURCE, "jpeg")}]}  # fmt: skip
    return _post(client, key, "/v1/images/edits", body)


def zip_url(images):
    return f"/dashboard/generations/{images[0].generation.public_id}/layers.zip"


def tiles_of(response):
    return [(tile.image.pk, tile.badge) for tile in response.context["tiles"]]


def test_a_set_and_a_split_are_one_tile_each_and_plain_images_one_tile_apiece(
    client, owner, owner_key
):
    lanterns = plain(client, owner_key)
    comic = a_set(client, owner_key, made=3, most=4)
    parts = a_split(client, owner_key, layers=3)
    client.force_login(owner)

    response = client.get(URL)

    assert tiles_of(response) == [
        (parts[0].pk, "3 layers"),  # the base, the split's first image
        (comic[0].pk, "set of 3"),  # what the set made, not the 4 it could have
        (lanterns[1].pk, ""),
        (lanterns[0].pk, ""),
    ]
    assert parts[0].layer == {"z_index": 0}
    page = response.content.decode()
    assert page.count('class="badge info tile-badge"') == 2
    for hidden in comic[1:] + parts[1:]:
        assert hidden.token not in page


def test_paging_walks_the_tiles_once_each(client, owner, owner_key, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE_SIZE", 2)
    first = plain(client, owner_key, n=1)
    comic = a_set(client, owner_key, made=4, most=4)
    last = plain(client, owner_key, n=2)
    client.force_login(owner)

    seen, cursor = [], None
    while True:
        response = client.get(URL, {"after": cursor} if cursor else {})
        seen.extend(tiles_of(response))
        cursor = response.context["page"].next_cursor
        if cursor is None:
            break

    assert [pk for pk, _ in seen] == [last[1].pk, last[0].pk, comic[0].pk, first[0].pk]


def test_a_deleted_first_image_hands_the_tile_to_the_next(client, owner, owner_key):
    comic = a_set(client, owner_key, made=3)
    client.force_login(owner)

    client.post(f"{URL}{comic[0].token}/delete/")

    assert tiles_of(client.get(URL)) == [(comic[1].pk, "set of 2")]


def test_the_page_reads_the_groups_in_one_query_however_many(client, owner, owner_key):
    a_set(client, owner_key)
    client.force_login(owner)
    with CaptureQueriesContext(connection) as one:
        client.get(URL)
    a_set(client, owner_key)
    a_split(client, owner_key)
    with CaptureQueriesContext(connection) as three:
        response = client.get(URL)

    assert len(response.context["tiles"]) == 3
    assert len(three) == len(one)


def test_a_set_image_page_shows_its_siblings_in_order(client, owner, owner_key):
    comic = a_set(client, owner_key, made=3)
    client.force_login(owner)

    page = client.get(f"{URL}{comic[1].token}/").content.decode()

    assert "Image 2 of a set of 3" in page
    strip = page[page.index('class="sibling-thumbs"') :]
    links = re.findall(r'href="/dashboard/gallery/([^/"]+)/"', strip)
    assert links[:3] == [image.token for image in comic]
    assert f'href="/dashboard/gallery/{comic[1].token}/" aria-current="page"' in strip
    assert "layers.zip" not in page


def _rects(page):
    return [
        tuple(int(v) for v in found)
        for found in re.findall(
            r'<rect class="line" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', page
        )
    ]


def test_a_split_page_shows_the_stack_and_draws_each_box_over_the_base(client, owner, owner_key):
    parts = a_split(client, owner_key, layers=3)
    base, layers = parts[0], parts[1:]
    client.force_login(owner)

    page = client.get(f"{URL}{base.token}/").content.decode()

    assert "Base of a layer split" in page
    assert f'viewBox="0 0 {base.width} {base.height}"' in page
    # Each box is where the upstream's pixel box says, to the per mille the normalized one keeps.
    rects = _rects(page)
    assert len(rects) == len(layers) == 3
    for (x, y, width, height), layer in zip(rects, layers, strict=True):
        left, top, right, bottom = layer.layer["bounding_box"]["absolute"]
        slack = max(base.width, base.height) / 1000 + 1
        assert abs(x - left) <= slack and abs(y - top) <= slack
        assert abs(x + width - right) <= slack and abs(y + height - bottom) <= slack
    stack = page[page.index('class="layer-list"') :]
    assert re.findall(r'href="/dashboard/gallery/([^/"]+)/"', stack) == [p.token for p in parts]
    for layer in layers:
        assert layer.layer["name"] in stack and layer.layer["description"] in stack
    assert f'href="{zip_url(parts)}">Download layers (.zip)</a>' in page


def test_a_layer_page_names_the_layer_and_marks_its_box(client, owner, owner_key):
    parts = a_split(client, owner_key, layers=3)
    second = parts[2]
    client.force_login(owner)

    page = client.get(f"{URL}{second.token}/").content.decode()

    assert f"Layer 2: {second.layer['name']}" in page
    assert second.layer["description"] in page
    marked = re.findall(r'class="layer-box box-c\d current"', page)
    assert len(marked) == 1
    current = page[page.index(marked[0]) :]
    (x, y, _, _), *_ = _rects(current)
    assert (x, y) == _rects(client.get(f"{URL}{parts[0].token}/").content.decode())[1][:2]
    assert f'href="/dashboard/gallery/{second.token}/" aria-current="page"' in page


# 1 KiB: the zip outgrows memory and is finished in a temporary file.
@pytest.mark.parametrize("memory_bytes", [views_gallery.ZIP_MEMORY_BYTES, 1024])
def test_the_zip_holds_every_file_as_stored_and_a_manifest_of_the_rows(
    client, owner, owner_key, monkeypatch, memory_bytes
):
    monkeypatch.setattr(views_gallery, "ZIP_MEMORY_BYTES", memory_bytes)
    parts = a_split(client, owner_key, layers=3)
    generation = Generation.objects.get(public_id=parts[0].generation.public_id)
    client.force_login(owner)

    response = client.get(zip_url(parts))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{generation.public_id}-layers.zip"'
    )
    assert "private" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    archive = zipfile.ZipFile(io.BytesIO(body))
    manifest = json.loads(archive.read("manifest.json"))
    base, layers = parts[0], parts[1:]
    assert manifest["generation"] == generation.public_id
    assert manifest["model"] == "seedream-5-0-pro"
    assert manifest["created"] == int(generation.created_at.timestamp())
    assert manifest["base"] == {"file": "00-base.jpg", "width": base.width,
                                "height": base.height, "format": "jpeg"}  # fmt: skip
    assert manifest["layers"] == [
        {
            "file": f"{i:02d}-{layer.layer['name'].replace(' ', '-')}.png",
            "z_index": i,
            "name": layer.layer["name"],
            "description": layer.layer["description"],
            "bounding_box": layer.layer["bounding_box"],
            "width": layer.width,
            "height": layer.height,
        }
        for i, layer in enumerate(layers, 1)
    ]
    files = [manifest["base"]["file"], *(entry["file"] for entry in manifest["layers"])]
    assert archive.namelist() == [*files, "manifest.json"]
    for name, image in zip(files, parts, strict=True):
        with default_storage.open(image.file.name, "rb") as stored:
            assert archive.read(name) == stored.read()


def test_the_zip_of_a_split_missing_a_file_is_404_not_a_short_zip(client, owner, owner_key):
    parts = a_split(client, owner_key, layers=2)
    default_storage.delete(parts[2].file.name)
    client.force_login(owner)

    assert client.get(zip_url(parts)).status_code == 404


@pytest.mark.parametrize("what", ["image page", "zip"])
def test_an_outsider_gets_404_for_a_split(client, owner_key, outsider, what):
    parts = a_split(client, owner_key)
    client.force_login(outsider)

    url = zip_url(parts) if what == "zip" else f"{URL}{parts[1].token}/"
    assert client.get(url).status_code == 404


def test_only_a_split_has_a_zip(client, owner, owner_key):
    lanterns = plain(client, owner_key)
    comic = a_set(client, owner_key)
    client.force_login(owner)

    assert client.get(zip_url(lanterns)).status_code == 404
    assert client.get(zip_url(comic)).status_code == 404
    assert client.get("/dashboard/generations/gen_nothing/layers.zip").status_code == 404


def test_signed_out_the_zip_asks_to_sign_in(client, owner_key):
    parts = a_split(client, owner_key)

    response = client.get(zip_url(parts))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize(
    ("bounding_box", "drawn"),
    [
        ({"normalized": [100, 250, 600, 1000]}, Box(x=200, y=250, width=1000, height=750)),
        # Outside the base, or upside down: brought back to its edges, never a negative size.
        ({"normalized": [-50, 900, 1200, 800]}, Box(x=0, y=900, width=2000, height=0)),
        ({"absolute": [0, 0, 10, 10]}, None),
        (None, None),
    ],
)
def test_a_box_is_drawn_from_its_normalized_corners_on_the_base(bounding_box, drawn):
    assert box_on(bounding_box, 2000, 1000) == drawn
