"""The playground's form: the same request the API takes, in a browser.

Its values are checked by the domain's own rules (``generation.spec.build_spec``, where the
API's parser ends too), so the playground can never accept what ``/v1`` would refuse, or refuse
what it would accept.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from generation import catalog
from generation.refusals import Refusal
from generation.spec import SEED_MAX, build_spec

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

    def __init__(self, *args: Any, model_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = catalog.text_to_image_models()
        chosen = self._chosen_model(models, model_id)
        self.model_info = chosen
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
        try:
            self.spec = build_spec(**self.spec_values())
        except Refusal as exc:
            field = exc.param if exc.param in self.fields else None
            if exc.param == "size":
                field = "custom_size" if data.get("size") == CUSTOM else "size"
            self.add_error(field, exc.message)
        return data

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
