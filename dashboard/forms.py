"""The playground's form: the same request the API takes, in a browser.

Its values are checked by the domain's own rules (``generation.spec.build_spec``, where the
API's parser ends too, and ``generation.references.check_reference`` for each reference image),
so the playground can never accept what ``/v1`` would refuse, or refuse what it would accept.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from accounts.models import Account
from billing import alerts as billing_alerts
from generation import catalog
from generation.models import Image
from generation.references import Reference, check_reference, editing_models
from generation.refusals import Refusal
from generation.spec import SEED_MAX, SET_TOTAL_MAX, build_spec
from keys import controls
from keys import services as keys
from keys.models import SpendPeriod

from . import gallery, references

CUSTOM = "custom"
MAX_IMAGES = 4
TIMES = "\u00d7"  # the multiplication sign people write sizes with
# What to make: images (``n`` of them), a set (one call; the model decides how many, up to
# ``max_images``) or a layer split of one reference image (its base and up to ``max_layers``).
IMAGES, SET, LAYERS = "images", "set", "layers"
MAKE_CHOICES = [(IMAGES, "Images"), (SET, "A set"), (LAYERS, "A layer split")]
SET_DEFAULT = 4
LAYERS_DEFAULT = 8
# The domain's words name the API's parameters; the form says them on the field they stand for.
_FIELD_OF_PARAM = {
    "sequential_image_generation": "make",
    "sequential_image_generation_options.max_images": "max_images",
    "layer_decomposition": "make",
    "max_layers": "max_layers",
    "image": "reference_files",
}


def normalise_size(raw: object) -> str:
    """A typed custom size as the API takes it: " 1536 X 1024" -> "1536x1024" (also with the
    multiplication sign)."""
    return str(raw or "").strip().lower().replace(" ", "").replace(TIMES, "x")


_WXH = re.compile(r"^(\d+)x(\d+)$")


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}"


def plain_size_error(model: catalog.ModelInfo, size: str, *, split: bool = False) -> str:
    """Why ``model`` does not make ``size``, in plain words and once (the API's own message
    names its parameter and quotes pixel counts; this is for people choosing a size)."""
    if split:
        keywords = ", ".join(model.layer_keywords)
        return f"“{size}” is not a size for a layer split. Choose one of {keywords}."
    match = _WXH.match(size)
    if match is None:
        keywords = ", ".join(model.keyword_sizes)
        also = f", or choose {keywords} in the list" if keywords else ""
        return (
            f"“{size}” is not a size. Type the width and height in pixels, such as 1536x1024{also}."
        )
    width, height = int(match[1]), int(match[2])
    pixels, nearest = width * height, catalog.nearest_size(model, width, height)
    shown = f"{width}{TIMES}{height}"
    if not model.min_aspect <= width / height <= model.max_aspect:
        shape = "wide" if width > height else "tall"
        return f"{shown} is too {shape} for {model.name}. The nearest size it makes is {nearest}."
    if not model.min_pixels <= pixels <= model.max_pixels:
        big = "small" if pixels < model.min_pixels else "large"
        return (
            f"{shown} is too {big} for {model.name}: it makes "
            f"{_megapixels(model.min_pixels)} to {_megapixels(model.max_pixels)} megapixels. "
            f"The nearest size it makes is {nearest}."
        )
    return f"{model.name} does not make {shown}. The nearest size it makes is {nearest}."


def size_choices(model: catalog.ModelInfo) -> list[tuple[str, str]]:
    keywords = [(k, f"{k} (about {round(p**0.5)}²)") for k, p in model.size_keywords.items()]
    presets = [(size, size.replace("x", f" {TIMES} ")) for size in model.recommended_sizes]
    return [*presets, *keywords, (CUSTOM, "Custom size…")]


def layer_size_choices(model: catalog.ModelInfo) -> list[tuple[str, str]]:
    """A layer split's sizes: the model's layer keywords, with their nominal side where the
    model has a size for the keyword."""
    choices = []
    for keyword in model.layer_keywords:
        if keyword == "auto":
            label = "auto (the model chooses by the picture)"
        elif keyword in model.keyword_sizes:
            side = round(catalog.resolve_layer_size(model, keyword).pixels ** 0.5)
            label = f"{keyword} (about {side}²)"
        else:
            label = keyword
        choices.append((keyword, label))
    return choices


def make_options(model: catalog.ModelInfo) -> list[str]:
    """What the model can make: images always, a set and a layer split where it has them."""
    return [IMAGES, *([SET] if model.sets else []), *([LAYERS] if model.max_layers else [])]


def playground_models() -> list[catalog.ModelInfo]:
    """The models the playground offers: every one that makes images from a prompt, then those
    that only edit (they need a reference image)."""
    models = catalog.text_to_image_models()
    return [*models, *(m for m in editing_models() if m not in models)]


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files under one name, in the order the browser sent them."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        uploads = data if isinstance(data, list | tuple) else [data] if data else []
        if not uploads and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        cleaned = []
        for upload in uploads:
            cleaned.append(super().clean(upload, initial))
        return cleaned


class PlaygroundForm(forms.Form):
    # Not required here: a layer split may leave it empty (``clean`` asks for it otherwise).
    prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A red fox in fresh snow, dawn light"}
        ),
    )
    model = forms.ChoiceField()
    # Every mode is accepted here, whatever the model: the domain refuses one the model does
    # not have, in its own words (the page offers only the model's).
    make = forms.ChoiceField(
        required=False, label="What to make", choices=MAKE_CHOICES, widget=forms.RadioSelect
    )
    # Any size is passed to the domain, which accepts and refuses what the API does (a WxH
    # in a layer split, say); the select offers the model's sizes for what is being made.
    size = forms.CharField(widget=forms.Select)
    custom_size = forms.CharField(
        required=False,
        max_length=11,
        label="Custom size",
        help_text="Width x height in pixels, for example 1536x1024.",
        widget=forms.TextInput(attrs={"inputmode": "text", "autocomplete": "off"}),
    )
    n = forms.TypedChoiceField(
        label="Number of images",
        coerce=int,
        choices=[(i, str(i)) for i in range(1, MAX_IMAGES + 1)],
        initial=1,
    )
    # The bounds are the domain's (they depend on the model and the references chosen): the
    # browser is told them, and a value past them is refused by build_spec in its words.
    max_images = forms.IntegerField(
        required=False,
        label="Images in the set, at most",
        help_text=(
            "The model decides how many, from 1 to this. A set and its reference images are "
            f"at most {SET_TOTAL_MAX} together."
        ),
        widget=forms.NumberInput(attrs={"min": 1, "max": SET_TOTAL_MAX}),
    )
    max_layers = forms.IntegerField(
        required=False,
        label="Layers, at most",
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    seed = forms.IntegerField(
        required=False,
        min_value=-1,
        max_value=SEED_MAX,
        help_text="The same seed and prompt give the same picture; empty or -1 picks one.",
    )
    guidance_scale = forms.DecimalField(
        required=False,
        min_value=1,
        max_value=10,
        decimal_places=1,
        label="Guidance scale",
        help_text="1 to 10: how closely the picture follows the prompt.",
        widget=forms.NumberInput(attrs={"step": "0.5"}),
    )
    watermark = forms.BooleanField(required=False, label="Add the “AI generated” watermark")
    # Reference images: picks from the customer's own gallery come first, in the order shown,
    # then files in the order chosen (the upstream is sent them in that order).
    gallery_references = forms.MultipleChoiceField(
        required=False, label="From your gallery", widget=forms.CheckboxSelectMultiple
    )
    reference_files = MultipleFileField(required=False, label="Reference images")

    def __init__(
        self,
        *args: Any,
        model_id: str | None = None,
        account: Account | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        models = playground_models()
        chosen = self._chosen_model(models, model_id)
        self.model_info = chosen
        self.takes_references = references.takes_references(chosen)
        self.limits = references.Limits(chosen) if self.takes_references else None
        self.no_references = "" if self.takes_references else references.none_taken(chosen)
        self.gallery_images = self._gallery_images(account)
        self.fields["gallery_references"].choices = [  # type: ignore[attr-defined]
            (image.token, image.generation.prompt) for image in self.gallery_images
        ]
        self.fields["prompt"].max_length = settings.PROMPT_MAX_CHARS  # type: ignore[attr-defined]
        self.fields["prompt"].widget.attrs["maxlength"] = settings.PROMPT_MAX_CHARS
        self.fields["model"].choices = [(m.id, m.name) for m in models]  # type: ignore[attr-defined]
        self.fields["model"].initial = chosen.id
        self.make_options = make_options(chosen)
        self.make_mode = self._make_mode()
        if not self.is_bound:  # a mode the model lacks, asked for by the page, is not shown
            self.initial = {**self.initial, "make": self.make_mode}
        if self.make_mode == LAYERS:
            self.fields["size"].widget.choices = layer_size_choices(chosen)
            self.fields["size"].initial = "auto"
            self.fields["prompt"].label = "Prompt (optional in a split)"
            self.fields["prompt"].help_text = "Name what to separate, or leave it empty."
            self.fields["prompt"].widget.attrs["placeholder"] = "The person, the sign, the sky"
        else:
            self.fields["size"].widget.choices = size_choices(chosen)
            self.fields["size"].initial = chosen.default_size
        self.set_most = max(SET_TOTAL_MAX - self.reference_count(), 1)
        # Only the extras this model takes are offered at all.
        if chosen.sets:
            self.fields["max_images"].initial = min(SET_DEFAULT, self.set_most)
            self.fields["max_images"].widget.attrs["max"] = self.set_most
            self.fields["max_images"].widget.attrs["data-set-total"] = SET_TOTAL_MAX
        else:
            del self.fields["max_images"]
        if chosen.max_layers:
            most, layers = chosen.max_layers, self.fields["max_layers"]
            layers.initial = min(LAYERS_DEFAULT, most)
            layers.widget.attrs["max"] = most
            layers.help_text = f"1 to {most}. The base and each layer delivered are paid as images."
        else:
            del self.fields["max_layers"]
        if not chosen.supports_seed:
            del self.fields["seed"]
        if not chosen.supports_guidance_scale:
            del self.fields["guidance_scale"]

    def _make_mode(self) -> str:
        """What the form makes now: as posted (a refused form shows what was asked), or as the
        page asked for it where the model has it, or images."""
        if self.is_bound:
            posted = self.data.get("make") or IMAGES
            return posted if posted in dict(MAKE_CHOICES) else IMAGES
        wanted = self.initial.get("make") or IMAGES
        return wanted if wanted in self.make_options else IMAGES

    @property
    def offers_modes(self) -> bool:
        """Whether the page shows "What to make": the model has a set or a split, or a refused
        form says why the mode it asked for is not one."""
        return len(self.make_options) > 1 or bool(self.errors.get("make"))

    def picked_tokens(self) -> list[str]:
        """The gallery images picked, as the form holds them (posted, or from the page's query)."""
        if self.is_bound:
            return list(dict.fromkeys(self._posted("gallery_references")))
        return list(dict.fromkeys(self.initial.get("gallery_references") or ()))

    def _posted(self, name: str) -> list[Any]:
        widget = self.fields[name].widget
        return list(widget.value_from_datadict(self.data, self.files, self.add_prefix(name)) or ())

    def reference_count(self) -> int:
        """How many reference images the form carries now (what the price counts)."""
        if self.is_bound:
            return len(self.picked_tokens()) + len(self._posted("reference_files"))
        # The page's script counts chosen files too (they cannot travel with a GET).
        counted = self.initial.get("references")
        return counted if isinstance(counted, int) else len(self.picked_tokens())

    def _gallery_images(self, account: Account | None) -> list[Image]:
        """The images offered as references: those picked (which may be older than the newest
        few), then the newest. Only the owner's: another customer's token is not among them,
        so picking it is refused like one that does not exist."""
        if account is None:
            return []
        offered = gallery.recent_images(account, references.GALLERY_PICKS)
        shown = {image.token for image in offered}
        wanted = [token for token in self.picked_tokens() if token not in shown]
        owned = gallery.owned_images(account, wanted) if wanted else {}
        return [*(owned[t] for t in wanted if t in owned), *offered]

    def _chosen_model(
        self, models: list[catalog.ModelInfo], model_id: str | None
    ) -> catalog.ModelInfo:
        wanted = model_id or (self.data.get("model") if self.is_bound else None)
        wanted = wanted or self.initial.get("model")
        return next((m for m in models if m.id == wanted), models[0])

    def size_value(self) -> str:
        data = self.cleaned_data
        if data.get("size") == CUSTOM:
            return normalise_size(data.get("custom_size"))
        return str(data.get("size") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("prompt") and (data.get("make") or IMAGES) != LAYERS:
            self.add_error("prompt", self.fields["prompt"].error_messages["required"])
        if data.get("size") == CUSTOM and not data.get("custom_size"):
            self.add_error("custom_size", "Enter a width and height, for example 1536x1024.")
            return data
        if self.errors:
            return data
        picks = [self._images[token] for token in dict.fromkeys(data["gallery_references"])]
        files = data["reference_files"]
        try:
            spec = build_spec(
                **self.spec_values(),
                reference_count=len(picks) + len(files),
                references_param="reference_files",
            )
        except Refusal as exc:
            self._refused(exc)
            return data
        checked = self._checked_references(picks, files)
        if self.errors:
            return data
        try:
            self.spec = spec.with_references(checked)  # a split's picture: at least 512x512
        except Refusal as exc:
            self._refused(exc)
        return data

    def _refused(self, exc: Refusal) -> None:
        """The domain's refusal, on the field it names (or the form's, for none shown)."""
        field = _FIELD_OF_PARAM.get(exc.param or "", exc.param)
        message = exc.message
        if exc.param == "size":
            field = "custom_size" if self.cleaned_data.get("size") == CUSTOM else "size"
            split = (self.cleaned_data.get("make") or IMAGES) == LAYERS
            message = plain_size_error(self.model_info, self.size_value(), split=split)
        self.add_error(field if field in self.fields else None, message)

    @property
    def _images(self) -> dict[str, Image]:
        return {image.token: image for image in self.gallery_images}

    def _checked_references(
        self, picks: list[Image], files: list[UploadedFile]
    ) -> tuple[Reference, ...]:
        """Each reference read and checked by the API's own rules, in order. Every one at fault
        is named on its field (the API names the first; a form can say them all)."""
        model = self.model_info
        checked: list[Reference] = []
        for position, image in enumerate(picks, 1):
            param = references.gallery_param(position)
            try:
                data = references.read_gallery_image(image)
            except FileNotFoundError:
                self.add_error("gallery_references", f"{param.capitalize()} is no longer stored.")
                continue
            try:
                checked.append(check_reference(data, model, param=param))
            except Refusal as exc:
                self.add_error("gallery_references", exc.message)
        for upload in files:
            data = references.read_upload(upload)
            try:
                checked.append(check_reference(data, model, param=references.file_param(upload)))
            except Refusal as exc:
                self.add_error("reference_files", exc.message)
        return tuple(checked)

    def spec_values(self) -> dict[str, Any]:
        """The cleaned values, as ``build_spec`` takes them."""
        data = self.cleaned_data
        guidance = data.get("guidance_scale")
        make = data.get("make") or IMAGES
        values: dict[str, Any] = {
            "model": data["model"],
            "prompt": data["prompt"],
            "size": self.size_value(),
            # A set or a split is one request: the count is its own (the images' n is not sent).
            "n": data["n"] if make == IMAGES else 1,
            "seed": data.get("seed"),
            "guidance_scale": float(guidance) if guidance is not None else None,
            "watermark": bool(data.get("watermark")),
        }
        if make == SET:
            values.update(sequential_image_generation="auto", max_images=data.get("max_images"))
        elif make == LAYERS:
            values.update(layer_decomposition=True, max_layers=data.get("max_layers"))
        return values


# - A key's spend controls and the account's alerts (dashboard/views_spend.py) -------------------

_SEPARATORS = re.compile(r"[\s,;]+")


def whole_credits(raw: object, *, what: str) -> int | None:
    """A count of credits as people type it ("5000", "5,000", "5 000"), or None for nothing;
    ValidationError naming ``what`` for anything else."""
    text = str(raw or "").strip()
    if not text:
        return None
    digits = re.sub(r"[,_\s\u00a0\u202f]", "", text)
    if not (digits.isascii() and digits.isdigit()):  # the field's max_length bounds its size
        raise forms.ValidationError(
            f"Enter {what} as a whole number of credits, like 5000 (or leave it empty)."
        )
    return int(digits)


def _model_label(model: catalog.ModelInfo) -> str:
    lifecycle = model.lifecycle()
    return model.name if lifecycle == catalog.ACTIVE else f"{model.name} ({lifecycle})"


class KeySpendForm(forms.Form):
    """A key's spend cap and allowlists. Each value is checked by the key's own rules
    (keys.services and keys.controls), so the page and the service never disagree."""

    spend_cap_credits = forms.CharField(
        required=False,
        max_length=32,
        label="Spend cap in credits (optional)",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    spend_cap_period = forms.ChoiceField(label="Counted", choices=SpendPeriod.choices)
    allowed_models = forms.MultipleChoiceField(
        required=False,
        label="Allowed models",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "%(value)s is not one of our models."},
    )
    allowed_networks = forms.CharField(
        required=False,
        max_length=controls.MAX_NETWORKS * 50,
        label="Allowed addresses (optional)",
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "203.0.113.7\n198.51.100.0/24", "spellcheck": "false"}
        ),
    )

    def __init__(self, *args: Any, models: list[catalog.ModelInfo], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = [  # type: ignore[attr-defined]
            (m.id, _model_label(m)) for m in models
        ]
        credits_per_usd = settings.CREDITS_PER_USD
        self.fields["spend_cap_credits"].help_text = (
            f"{credits_per_usd:,} credits are $1.00. Requests that would pass the cap are refused; "
            "empty: the key may spend the whole balance."
        )
        self.fields["allowed_models"].help_text = "None ticked: the key may use every model."
        self.fields[
            "allowed_networks"
        ].help_text = "One IP address or CIDR network per line (IPv4 or IPv6). Empty: any address."

    def clean_spend_cap_credits(self) -> int | None:
        cap = whole_credits(self.cleaned_data.get("spend_cap_credits"), what="the cap")
        try:
            return keys.check_spend_cap(cap)
        except controls.InvalidControl as error:
            raise forms.ValidationError(str(error)) from None

    def clean_allowed_networks(self) -> list[str]:
        typed = _SEPARATORS.split(self.cleaned_data.get("allowed_networks") or "")
        try:
            return controls.parse_networks(typed)
        except controls.InvalidControl as error:
            raise forms.ValidationError(str(error)) from None

    def clean_allowed_models(self) -> list[str]:
        chosen: list[str] = self.cleaned_data.get("allowed_models") or []
        if len(chosen) > controls.MAX_MODELS:
            raise forms.ValidationError(f"A key takes at most {controls.MAX_MODELS} models.")
        return chosen


class AlertsForm(forms.Form):
    """The account's alert thresholds, checked by billing's own rules (billing.alerts)."""

    low_balance_alert_credits = forms.CharField(
        required=False,
        max_length=32,
        label="Tell me when my balance falls below (credits, optional)",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    key_budget_alert_percents = forms.CharField(
        required=False,
        max_length=100,
        label="Tell me when a key has spent this share of its cap (per cent)",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["low_balance_alert_credits"].help_text = (
            f"{settings.CREDITS_PER_USD:,} credits are $1.00. Told once each time the balance "
            "falls below it; credits added above it arm it again. Empty: no alert."
        )
        self.fields["key_budget_alert_percents"].help_text = (
            f"Up to {billing_alerts.KEY_BUDGET_ALERTS_MAX} numbers from 1 to 100, separated by "
            "commas, e.g. 50, 80, 100. Each is told at most once per window of a key's cap. "
            "Empty: none."
        )

    def clean_low_balance_alert_credits(self) -> int | None:
        threshold = whole_credits(
            self.cleaned_data.get("low_balance_alert_credits"), what="the alert"
        )
        try:
            return billing_alerts.check_low_balance_threshold(threshold)
        except billing_alerts.InvalidAlert as error:
            raise forms.ValidationError(str(error)) from None

    def clean_key_budget_alert_percents(self) -> list[int]:
        typed = [
            t
            for t in _SEPARATORS.split(self.cleaned_data.get("key_budget_alert_percents") or "")
            if t
        ]
        percents = []
        for text in typed:
            number = text.removesuffix("%")
            if not (number.isascii() and number.isdigit()):
                raise forms.ValidationError(
                    f"“{text[:20]}” is not a whole per cent: write numbers like 50, 80, 100."
                )
            percents.append(int(number))
        try:
            return billing_alerts.check_key_budget_percents(percents)
        except billing_alerts.InvalidAlert as error:
            raise forms.ValidationError(str(error)) from None
