"""Sets and layer splits in the playground: "What to make" where the model has them, the set's
and the split's counts reaching the domain's spec, their refusals in the domain's words on the
field they name (nothing held), and a live price that is the API's quote and the charge."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from billing import services as billing
from generation import catalog, services
from generation.models import Generation, Image, InputImage
from generation.references import check_reference
from generation.refusals import Refusal
from generation.spec import build_spec
from tests.support.money import assert_ledger_balanced
from tests.support.pictures import BLUE, GREEN, RED, data_url, picture

# Every test here sees on_commit callbacks run at once (tests/dashboard/conftest.py).
pytestmark = pytest.mark.usefixtures("commits_at_once")

URL = "/dashboard/playground/"
QUOTE = f"{URL}quote/"
HTMX = {"HX-Request": "true"}
TOTAL = re.compile(r"<strong>(\d+) credits</strong>")
# A split's picture has at least 512x512 pixels.
SOURCE = picture(RED, (768, 512), "JPEG")
SMALL = picture(BLUE)  # 64x48


def upload(name: str, data: bytes = SOURCE) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def form(**overrides: Any) -> dict[str, Any]:
    return {"prompt": "a comic strip", "model": "seedream-4-0", "size": "2048x2048", "n": "1",
            **overrides}  # fmt: skip


def a_set(**overrides: Any) -> dict[str, Any]:
    return form(**{"make": "set", "max_images": "4", **overrides})


def a_split(**overrides: Any) -> dict[str, Any]:
    values = {"prompt": "", "model": "seedream-5-0-pro", "size": "1K", "make": "layers",
              "max_layers": "8", "reference_files": [upload("photo.jpg")]}  # fmt: skip
    return form(**{**values, **overrides})


def quoted(client, **params: Any) -> int:
    page = client.get(QUOTE, params).content.decode()
    found = TOTAL.search(page)
    assert found, page
    return int(found.group(1))


def api_quote(client, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/v1/images/quote",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.content
    return response.json()


class _FieldErrors(HTMLParser):
    """Each form control's errors: the ``p.error`` texts of the innermost ``.has-error``
    element around it (a field's block: its label, control, help and errors)."""

    VOID = {"input", "img", "br", "meta", "link", "hr", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, Any] | None, list[str] | None]] = []
        self.errors: dict[str, list[str]] = {}

    def _box(self) -> dict[str, Any] | None:
        return next((box for _, box, _ in reversed(self.stack) if box is not None), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        box = self._box()
        if tag in ("input", "select", "textarea") and attributes.get("name") and box:
            box["names"].add(attributes["name"])
        if tag in self.VOID:
            return
        own: dict[str, Any] | None = (
            {"names": set(), "errors": []} if "has-error" in classes else None
        )
        text: list[str] | None = [] if tag == "p" and "error" in classes else None
        self.stack.append((tag, own, text))

    def handle_data(self, data: str) -> None:
        for _, _, text in reversed(self.stack):
            if text is not None:
                text.append(data)
                return

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            opened, box, text = self.stack.pop()
            if text is not None and (around := self._box()) is not None:
                around["errors"].append("".join(text).strip())
            if box is not None:
                for name in box["names"]:
                    self.errors.setdefault(name, []).extend(box["errors"])
            if opened == tag:
                return


def errors_on(page: str, name: str) -> list[str]:
    parser = _FieldErrors()
    parser.feed(page)
    return parser.errors.get(name, [])


def refusal(**values: Any) -> str:
    """The domain's message for these values (what the API answers too)."""
    with pytest.raises(Refusal) as caught:
        build_spec(**{"prompt": "a comic strip", "references_param": "reference_files", **values})
    return caught.value.message


def checked_mode(page: str) -> str:
    """The value of the "What to make" choice the page has checked."""
    (value,) = re.findall(r'name="make" value="(\w+)"[^>]* checked', page)
    return value


def options_of(page: str, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}".*?</select>', page, re.S)
    assert select, page
    return re.findall(r'<option value="([^"]*)"', select.group(0))


# --- what the form offers -----------------------------------------------------------------------


def test_what_to_make_is_offered_only_where_the_model_has_it(signed_in):
    four = signed_in.get(URL).content.decode()
    pro = signed_in.get(URL, {"model": "seedream-5-0-pro"}, headers=HTMX).content.decode()
    five_five = signed_in.get(URL, {"model": "seedream-5-5"}, headers=HTMX).content.decode()
    three = signed_in.get(URL, {"model": "seedream-3-0"}, headers=HTMX).content.decode()

    assert "<legend>What to make</legend>" in four
    assert checked_mode(four) == "images"
    assert "A set of up to <span data-set-cap>15</span> related images" in four
    assert re.search(r'name="max_images" value="4"[^>]* max="15"', four)
    assert "Split the reference image" not in four and 'name="max_layers"' not in four

    assert "Split the reference image into layers (up to 16)" in pro
    assert re.search(r'name="max_layers" value="8"[^>]* max="16"', pro)
    assert "A set of up to" not in pro and 'name="max_images"' not in pro
    assert "Split the reference image into layers (up to 99)" in five_five

    assert "What to make" not in three and 'name="make"' not in three
    assert 'name="n"' in three  # images alone: the count of images as before


def test_a_sets_cap_is_fifteen_less_the_references_chosen(signed_in):
    page = signed_in.get(URL, {"make": "set", "references": "3"}).content.decode()

    assert checked_mode(page) == "set"
    assert "A set of up to <span data-set-cap>12</span> related images" in page
    assert re.search(r'name="max_images" value="4"[^>]* max="12"', page)
    assert "for a set of up to 4 images" in page  # the form's default is priced


def test_a_split_offers_the_models_layer_sizes_and_an_optional_prompt(signed_in):
    flash = signed_in.get(
        URL, {"model": "seedream-5-0-flash", "make": "layers", "size": "2048x2048"}, headers=HTMX
    ).content.decode()
    pro = signed_in.get(
        URL, {"model": "seedream-5-0-pro", "make": "layers"}, headers=HTMX
    ).content.decode()

    assert options_of(flash, "size") == ["1K", "1.5K", "2K", "auto"]
    assert '<option value="auto" selected>' in flash  # a WxH is not a split's size
    assert "Prompt (optional in a split)" in flash
    assert 'Reference image <span class="optional">(the picture to split' in flash
    assert "A split takes one image: JPEG, PNG" in flash
    assert 'name="custom_size"' not in flash  # a split takes no WxH
    assert "<textarea" in flash and "required" not in flash.split("<textarea")[1].split(">")[0]
    # Every size offered is one the domain takes for a split on that model.
    model = catalog.get_model("seedream-5-0-pro")
    assert model is not None
    for size in options_of(pro, "size"):
        assert build_spec(model=model.id, prompt="", size=size, layer_decomposition=True,
                          reference_count=1).size  # fmt: skip


def test_another_models_form_makes_images_where_it_has_no_such_choice(signed_in):
    # From a set on 4.0 to 5.0 Pro (no sets); from a split back to images.
    pro = signed_in.get(
        URL, {"model": "seedream-5-0-pro", "make": "set", "max_images": "6"}, headers=HTMX
    ).content.decode()
    back = signed_in.get(
        URL, {"model": "seedream-5-0-pro", "make": "images", "size": "auto"}, headers=HTMX
    ).content.decode()

    assert checked_mode(pro) == "images"
    assert "for 1 image at" in pro
    assert f'<option value="{catalog.get_model("seedream-5-0-pro").default_size}" selected>' in back
    assert 'value="auto"' not in back


# --- submitting ---------------------------------------------------------------------------------


def test_a_set_reaches_the_spec_with_its_size_and_holds_its_quote(
    signed_in, owner, sent, submitted
):
    files = [upload("a.jpg", picture(RED)), upload("b.jpg", picture(GREEN))]
    price = quoted(signed_in, model="seedream-4-0", size="2048x2048", make="set",
                   max_images="5", references=2)  # fmt: skip

    # ``n`` is the images' count: a set ignores it.
    response = signed_in.post(
        URL, a_set(max_images="5", n="3", reference_files=files), headers=HTMX
    )

    assert response.status_code == 200, response.content
    (spec,) = submitted
    assert (spec.max_images, spec.max_layers, spec.n, spec.most_images) == (5, None, 1, 5)
    assert len(spec.references) == 2
    generation = Generation.objects.get()
    assert (generation.n, generation.params["max_images"]) == (5, 5)
    assert generation.reserved_credits == price == 5 * 40
    assert sent == [generation.pk]
    assert assert_ledger_balanced(owner) == 1000 - price


@pytest.mark.parametrize("picked", ["file", "gallery"])
def test_a_split_without_a_prompt_reaches_the_spec_with_its_layers(
    signed_in, owner, owner_key, sent, submitted, picked
):
    sources = {"reference_files": [upload("photo.jpg")]}
    if picked == "gallery":  # an image of the customer's own (1024x1024)
        made = signed_in.post(
            "/v1/images/generations",
            json.dumps({"model": "seedream-4-0", "prompt": "a lantern", "size": "1K"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {owner_key}"},
        )
        token = Image.objects.get(generation__public_id=made.json()["id"]).token
        sources = {"reference_files": [], "gallery_references": [token]}
    before = assert_ledger_balanced(owner)
    price = quoted(signed_in, model="seedream-5-0-pro", size="auto", make="layers",
                   max_layers="6", references=1)  # fmt: skip

    response = signed_in.post(URL, a_split(size="auto", max_layers="6", **sources), headers=HTMX)

    assert response.status_code == 200, response.content
    (spec,) = submitted
    assert (spec.max_layers, spec.max_images, spec.n, spec.most_images) == (6, None, 1, 7)
    assert (spec.prompt, spec.size.value, len(spec.references)) == ("", "auto", 1)
    generation = Generation.objects.get(source="playground")
    assert (generation.n, generation.params["layers"]) == (7, 6)
    assert generation.reserved_credits == price
    assert before - assert_ledger_balanced(owner) == price
    assert sent == [generation.pk]


def _split_values(**values: Any) -> dict[str, Any]:
    return {"model": "seedream-5-0-pro", "prompt": "", "size": "1K", "layer_decomposition": True,
            "max_layers": 8, "reference_count": 1, **values}  # fmt: skip


def _set_values(**values: Any) -> dict[str, Any]:
    return {"model": "seedream-4-0", "size": "2048x2048", "sequential_image_generation": "auto",
            "max_images": 4, **values}  # fmt: skip


def _too_small() -> str:
    model = catalog.get_model("seedream-5-0-pro")
    assert model is not None
    spec = build_spec(**_split_values())
    with pytest.raises(Refusal) as caught:
        spec.with_references((check_reference(SMALL, model, param="small.jpg"),))
    return caught.value.message


THREE = [upload(f"{i}.jpg", picture(RED)) for i in range(3)]


@pytest.mark.parametrize(
    ("posted", "field", "domain", "says"),
    [
        (a_set(model="seedream-5-0-pro", size="1K"), "make",
         lambda: refusal(**_set_values(model="seedream-5-0-pro", size="1K")), "makes no sets"),
        (a_set(model="seedream-3-0", size="1024x1024"), "make",
         lambda: refusal(**_set_values(model="seedream-3-0", size="1024x1024")),
         "makes no sets"),
        (a_set(max_images="13", reference_files=THREE), "max_images",
         lambda: refusal(**_set_values(max_images=13, reference_count=3)),
         "from 1 to 12 with 3 reference images"),
        (a_set(max_images="16"), "max_images",
         lambda: refusal(**_set_values(max_images=16)), "from 1 to 15"),
        (a_split(model="seedream-4-0", size="2K"), "make",
         lambda: refusal(**_split_values(model="seedream-4-0", size="2K")),
         "splits no pictures into layers"),
        (a_split(reference_files=[upload("a.jpg"), upload("b.jpg")]), "reference_files",
         lambda: refusal(**_split_values(reference_count=2)), "2 were sent"),
        (a_split(reference_files=[]), "reference_files",
         lambda: refusal(**_split_values(reference_count=0)), "0 were sent"),
        (a_split(max_layers="17"), "max_layers",
         lambda: refusal(**_split_values(max_layers=17)), "from 1 to 16 on seedream-5-0-pro"),
        (a_split(reference_files=[upload("small.jpg", SMALL)]), "reference_files",
         _too_small, "must have at least 262,144 pixels"),
    ],
    ids=["set-on-pro", "set-on-3-0", "set-past-15-with-references", "set-of-16",
         "split-on-4-0", "split-of-two", "split-of-none",
         "split-past-the-models-layers", "split-of-a-small-picture"],
)  # fmt: skip
def test_a_refused_set_or_split_says_the_domains_words_on_its_field_and_holds_nothing(
    signed_in, owner, sent, posted, field, domain, says
):
    for files in posted.get("reference_files", []):
        files.seek(0)

    response = signed_in.post(URL, posted, headers=HTMX)

    assert response["HX-Retarget"] == "#playground-form"
    message = domain()
    assert says in message
    assert errors_on(response.content.decode(), field) == [message]
    assert not Generation.objects.exists() and not InputImage.objects.exists()
    assert sent == []
    assert assert_ledger_balanced(owner) == 1000


@pytest.mark.parametrize(
    ("posted", "field", "size"),
    [
        (a_split(size="1024x1024"), "size", "1024x1024"),
        (a_split(size="custom", custom_size="1536x1024"), "custom_size", "1536x1024"),
    ],
    ids=["split-with-wxh", "split-with-custom-wxh"],
)
def test_a_split_refuses_a_wxh_size_once_in_plain_words(
    signed_in, owner, sent, posted, field, size
):
    """The domain refuses it in the API's words ("Invalid value for 'size': ..."); the form
    says it once, on the field, in its own."""
    assert "is not a size of a layer split" in refusal(**_split_values(size=size))

    page = signed_in.post(URL, posted, headers=HTMX).content.decode()

    assert errors_on(page, field) == [
        f"“{size}” is not a size for a layer split. Choose one of 1K, 1.5K, 2K, auto."
    ]
    assert "Invalid value" not in page and page.count("is not a size") == 1
    assert not Generation.objects.exists()


def test_a_set_needs_a_prompt_and_a_split_does_not(signed_in, sent):
    refused = signed_in.post(URL, a_set(prompt="  "), headers=HTMX).content.decode()

    assert errors_on(refused, "prompt") == ["This field is required."]
    assert not Generation.objects.exists()

    signed_in.post(URL, a_split(prompt="  "), headers=HTMX)

    assert Generation.objects.get().prompt == ""
    assert len(sent) == 1


def test_without_javascript_a_split_posts_and_redirects(signed_in, sent):
    response = signed_in.post(URL, a_split(prompt="the red block"))

    assert response.status_code == 302
    generation = Generation.objects.get()
    assert (generation.prompt, generation.params["layers"], generation.size) == (
        "the red block", 8, "1K",
    )  # fmt: skip


def test_a_refused_split_is_shown_again_as_a_split(signed_in, sent):
    page = signed_in.post(
        URL, a_split(reference_files=[], max_layers="5"), headers=HTMX
    ).content.decode()

    assert checked_mode(page) == "layers"
    assert re.search(r'name="max_layers" value="5"', page)
    assert options_of(page, "size") == [
        "1K",
        "1.5K",
        "2K",
        "auto",
    ]  # the layer keywords, not the sizes


# --- the price ----------------------------------------------------------------------------------


def _references(count: int) -> list[dict[str, str]]:
    colours = [RED, GREEN, BLUE]
    return [{"image_url": data_url(picture(colours[i % 3]))} for i in range(count)]


@pytest.mark.parametrize(
    ("model", "size", "references", "most"),
    [("seedream-4-0", "4K", 2, "5"), ("seedream-5-0-lite", "2K", 0, "3"),
     ("seedream-4-5", "2K", 1, "")],
)  # fmt: skip
def test_the_live_price_of_a_set_is_the_apis_quote(
    signed_in, owner_key, model, size, references, most
):
    options = {"max_images": int(most)} if most else {}
    body = {"model": model, "prompt": "a comic strip", "size": size,
            "sequential_image_generation": "auto", "sequential_image_generation_options": options,
            **({"images": _references(references)} if references else {})}  # fmt: skip
    api = api_quote(signed_in, owner_key, body)

    params = {"model": model, "size": size, "make": "set", "n": "3", "max_images": most,
              "references": references}  # fmt: skip
    page = signed_in.get(QUOTE, params).content.decode()

    images = len(api["images"])
    assert images == (int(most) if most else 15 - references)
    assert quoted(signed_in, **params) == api["credits"]
    each = api["images"][0]["credits"]
    assert f"for a set of up to {images} images at {each} each" in page


@pytest.mark.parametrize(
    ("model", "size", "most"),
    [("seedream-5-0-pro", "auto", "6"), ("seedream-5-5", "1.5K", "4"),
     ("seedream-5-0-flash", "1K", "")],
)  # fmt: skip
def test_the_live_price_of_a_split_is_the_apis_quote(signed_in, owner_key, model, size, most):
    body = {"model": model, "layer_decomposition": True, "size": size,
            "images": [{"image_url": data_url(SOURCE, "jpeg")}],
            **({"max_layers": int(most)} if most else {})}  # fmt: skip
    api = api_quote(signed_in, owner_key, body)
    params = {"model": model, "size": size, "make": "layers", "max_layers": most,
              "references": 1, "n": "2"}  # fmt: skip

    page = signed_in.get(QUOTE, params).content.decode()

    layers = int(most) if most else catalog.get_model(model).max_layers
    assert len(api["images"]) == layers + 1
    assert quoted(signed_in, **params) == api["credits"]
    assert f"for the base and up to {layers} layers ({layers + 1} images)" in page


def test_the_live_price_says_why_a_set_or_split_cannot_be_priced(signed_in):
    none = signed_in.get(QUOTE, {"model": "seedream-5-0-pro", "size": "auto", "make": "layers",
                                 "max_layers": "4", "references": 0}).content.decode()  # fmt: skip
    past = signed_in.get(QUOTE, {"model": "seedream-4-0", "size": "2K", "make": "set",
                                 "max_images": "14", "references": 2}).content.decode()  # fmt: skip
    mangled = signed_in.get(QUOTE, {"model": "seedream-4-0", "size": "2K", "make": "set",
                                    "max_images": "lots"}).content.decode()  # fmt: skip

    for page in (none, past, mangled):
        assert '<p class="quote error">' in page and "credits</strong>" not in page
    assert escape(refusal(**_split_values(reference_count=0))) in none
    assert escape(refusal(**_set_values(max_images=14, reference_count=2, size="2K"))) in past
    assert "enter a whole number" in mangled


def charge_of(generation: Generation) -> int:
    """What the delivered images cost by the model's rule, each at its delivered size (never
    above the tier it was held at), and the references' surcharge of the call that delivered."""
    rule = billing.price_rule(generation.model)
    held = generation.price_per_image_credits
    images = list(generation.images.all())
    credits = sum(min(rule.tier(i.width * i.height).credits, held) for i in images)
    references = generation.inputs.count()
    return credits + (rule.references_credits(references) if images else 0)


def test_a_set_is_charged_for_the_images_it_delivered(signed_in, owner, sent):
    price = quoted(signed_in, model="seedream-4-0", size="2048x2048", make="set",
                   max_images="5", references=1)  # fmt: skip

    signed_in.post(
        URL,
        a_set(prompt="three panels [sim:set-count=3]", max_images="5",
              reference_files=[upload("r.png", picture(RED))]),
        headers=HTMX,
    )  # fmt: skip
    generation = Generation.objects.get()
    assert generation.reserved_credits == price
    assert services.run_queued_generation(generation.pk).status == "done"

    generation.refresh_from_db()
    assert (generation.status, generation.images_delivered) == ("succeeded", 3)
    charged = charge_of(generation)
    assert charged == 3 * 40 < price  # the two images not made are not paid for
    assert 1000 - assert_ledger_balanced(owner) == charged == generation.charged_credits
    card = signed_in.get(f"{URL}generations/{generation.public_id}/").content.decode()
    assert f"Charged {charged} credits" in card
    assert all(image.token in card for image in generation.images.all())


@pytest.mark.parametrize("model", ["seedream-5-0-pro", "seedream-5-5"])
def test_a_split_is_charged_for_its_base_and_the_layers_delivered(signed_in, owner, sent, model):
    price = quoted(signed_in, model=model, size="1K", make="layers", max_layers="6",
                   references=1)  # fmt: skip

    signed_in.post(URL, a_split(model=model, size="1K", max_layers="6"), headers=HTMX)
    generation = Generation.objects.get()
    assert generation.reserved_credits == price
    assert services.run_queued_generation(generation.pk).status == "done"

    generation.refresh_from_db()
    assert (generation.status, generation.images_delivered) == ("succeeded", 4)  # base and 3
    charged = charge_of(generation)
    assert 0 < charged < price
    assert 1000 - assert_ledger_balanced(owner) == charged == generation.charged_credits
