"""The official `openai` package asks for OpenAI's delivery options and reads them back."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image as PILImage

from tests.integration.test_openai_sdk import sdk  # noqa: F401  (the fixture)
from tests.support.money import assert_ledger_balanced

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def test_the_sdk_gets_the_format_and_size_it_asked_for(sdk):  # noqa: F811
    user, client = sdk()

    result = client.images.generate(
        model="seedream-4-0",
        prompt="a red fox in snow",
        quality="low",
        output_format="webp",
        output_compression=80,
        response_format="b64_json",
    )

    assert (result.output_format, result.size) == ("webp", "1024x1024")
    data = base64.b64decode(result.data[0].b64_json)
    with PILImage.open(io.BytesIO(data)) as picture:
        assert (picture.format, picture.size) == ("WEBP", (1024, 1024))
    assert assert_ledger_balanced(user) == 960
