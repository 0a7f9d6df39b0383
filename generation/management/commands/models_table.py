"""``manage.py models_table``: the catalog's models as the README's Markdown table (the README
is checked against it by tests/generation/test_catalog.py, so it cannot drift from the data)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from generation import catalog


def _pixels(count: int) -> str:
    return f"{count:,}"


def _aspect(model: catalog.ModelInfo) -> str:
    return f"1:{round(1 / model.min_aspect, 2):g} to {round(model.max_aspect, 2):g}:1"


def markdown_table() -> str:
    rows = [
        "| Model | Status | Upstream ids (BytePlus) | Modes | Default size | Keywords | "
        "Pixels (width × height) | Aspect | References |",  # noqa: RUF001 (the README's sign)
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in catalog.all_models():
        status = model.status
        if model.sunset:
            status += f" (sunset {model.sunset.isoformat()}, use `{model.replacement}`)"
        names = ", ".join(f"`{name}`" for name in model.upstream_ids.get("byteplus", ()))
        also = f" (also `{'`, `'.join(model.aliases)}`)" if model.aliases else ""
        keywords = ", ".join(f"`{k}` = {v}" for k, v in model.keyword_sizes.items()) or "none"
        rows.append(
            f"| `{model.id}`{also} | {status} | {names} | {', '.join(model.modes)} | "
            f"`{model.default_size}` | {keywords} | {_pixels(model.min_pixels)} to "
            f"{_pixels(model.max_pixels)} | {_aspect(model)} | {model.max_references} |"
        )
    return "\n".join(rows) + "\n"


class Command(BaseCommand):
    help = "Print the model catalog as the README's Markdown table."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(markdown_table(), ending="")
