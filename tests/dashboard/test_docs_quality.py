"""The docs page's quality map and delivery options come from the live catalog."""

from __future__ import annotations

import copy
import re

import pytest

from tests.dashboard.test_docs_page import docs, section

pytestmark = pytest.mark.smoke


def rows(page: str) -> dict[str, list[str]]:
    """The quality table: each model's sizes for low, medium, high, auto."""
    found = {}
    for row in re.findall(r"<tr>\s*<td><code>(.*?)</code></td>(.*?)</tr>", page, re.S):
        model, cells = row
        found[model] = re.findall(r"</span>(.*?)</td>", cells)
    return found


def test_the_docs_map_each_quality_to_the_models_sizes(client, db):
    quality = section(docs(client), "quality")

    table = rows(quality)
    assert table["seedream-4-0"] == ["1K", "2K", "4K", "2048x2048"]
    assert table["seedream-5-0-pro"] == ["1K", "2K", "2K", "1024x1024"]
    assert table["seedream-3-0"] == ["1024x1024"] * 4
    assert "seededit-3-0" not in table  # edits only: no quality to pick


def test_the_docs_name_the_models_that_make_transparent_images(client, db, settings):
    generations = section(docs(client), "generations")
    assert "<code>seedream-5-5</code>" in generations

    models = copy.deepcopy(settings.SEEDREAM_MODELS)
    models["seedream-5-0-flash"]["fields"]["background"] = ["transparent"]
    settings.SEEDREAM_MODELS = models
    generations = section(docs(client), "generations")
    assert "<code>seedream-5-0-flash</code>, <code>seedream-5-5</code>" in generations
