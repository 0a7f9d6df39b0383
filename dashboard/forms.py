"""The playground's form: the same request the API takes, in a browser.

Its values are checked by the domain's own rules (``generation.spec.build_spec``, where the
API's parser ends too, and ``generation.references.check_reference`` for each reference image),
so the playground can never accept what ``/v1`` would refuse, or refuse what it would accept.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from accounts.models import User
from generation import catalog
from generation.models import Image
from generation.references import Reference, check_reference, editing_models
from generation.refusals import Refusal
from generation.spec import SEED_MAX, build_spec

from . import gallery, references

CUSTOM = "custom"
MAX_IMAGES = 4
TIMES = "\u00d7"  # the multiplication sign people write sizes with


def normalise_size(raw: object) -> str:
    """A typed custom size as the API takes it: " 1536 X 1024" -> "1536x1024" (also with the
    multiplication sign)."""
    return str(raw or "").strip().lower().replace(" ", "").replace(TIMES, "x")


def size_choices(model: catalog.ModelInfo) -> list[tuple[str, str]]:
    keywords = [(k, f"{k} (about {round(p**0.5)}²)") for k, p in model.size_keywords.items()]
    presets = [(size, size.replace("x", f" {TIMES} ")) for size in model.recommended_sizes]
    return [*presets, *keywords, (CUSTOM, "Custom size…")]


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
    prompt = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A red fox in fresh snow, dawn light"}
        )
    )
    model = forms.ChoiceField()
    size = forms.ChoiceField()
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
        user: User | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        models = playground_models()
        chosen = self._chosen_model(models, model_id)
        self.model_info = chosen
        self.takes_references = references.takes_references(chosen)
        self.limits = references.Limits(chosen) if self.takes_references else None
        self.no_references = "" if self.takes_references else references.none_taken(chosen)
        self.gallery_images = self._gallery_images(user)
        self.fields["gallery_references"].choices = [  # type: ignore[attr-defined]
            (image.token, image.generation.prompt) for image in self.gallery_images
        ]
        self.fields["prompt"].max_length = settings.PROMPT_MAX_CHARS  # type: ignore[attr-defined]
        self.fields["prompt"].widget.attrs["maxlength"] = settings.PROMPT_MAX_CHARS
        self.fields["model"].choices = [(m.id, m.name) for m in models]  # type: ignore[attr-defined]
        self.fields["model"].initial = chosen.id
        self.fields["size"].choices = size_choices(chosen)  # type: ignore[attr-defined]
        self.fields["size"].initial = chosen.default_size
        # Only the extras this model takes are offered at all.
        if not chosen.supports_seed:
            del self.fields["seed"]
        if not chosen.supports_guidance_scale:
            del self.fields["guidance_scale"]

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

    def _gallery_images(self, user: User | None) -> list[Image]:
        """The images offered as references: those picked (which may be older than the newest
        few), then the newest. Only the owner's: another customer's token is not among them,
        so picking it is refused like one that does not exist."""
        if user is None:
            return []
        offered = gallery.recent_images(user, references.GALLERY_PICKS)
        shown = {image.token for image in offered}
        wanted = [token for token in self.picked_tokens() if token not in shown]
        owned = gallery.owned_images(user, wanted) if wanted else {}
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
            field = exc.param if exc.param in self.fields else None
            if exc.param == "size":
                field = "custom_size" if data.get("size") == CUSTOM else "size"
            self.add_error(field, exc.message)
            return data
        checked = self._checked_references(picks, files)
        if not self.errors:
            self.spec = spec.with_references(checked)
        return data

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
        return {
            "model": data["model"],
            "prompt": data["prompt"],
            "size": self.size_value(),
            "n": data["n"],
            "seed": data.get("seed"),
            "guidance_scale": float(guidance) if guidance is not None else None,
            "watermark": bool(data.get("watermark")),
        }
