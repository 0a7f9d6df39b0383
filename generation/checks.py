"""System checks: `manage.py check --deploy` warns about a production that is not one."""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from PIL import Image as PILImage

from . import provenance


@register(Tags.security, deploy=True)
def upstream_is_real(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.USE_SIMULATOR:
        return [
            Warning(
                "No UPSTREAM_API_KEY: images come from the bundled simulator, and customers "
                "would pay for synthetic pictures.",
                hint="Set UPSTREAM_API_KEY (and UPSTREAM_BASE_URL for other regions).",
                id="api.W001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def c2pa_signer_is_the_operators(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.C2PA_SIGNING_KEY:
        return []
    if settings.C2PA_DEVELOPMENT_SIGNER:
        says = "images are signed with the development C2PA key, which validators do not trust"
    else:
        says = "images carry the XMP provenance marking only, with no signed C2PA manifest"
    return [
        Warning(
            f"No C2PA signer is configured: {says}.",
            hint="Set C2PA_SIGNING_KEY_FILE and C2PA_CERTIFICATE_FILE (README, Provenance).",
            id="api.W002",
        )
    ]


@register()
def c2pa_signer_signs(app_configs: Any, **kwargs: Any) -> list[Error]:
    """A configured signer that cannot sign would leave every image unsigned: say so at start."""
    if not settings.C2PA_SIGNING_KEY:
        return []
    try:
        key = provenance.load_signing_key(settings.C2PA_SIGNING_KEY, settings.C2PA_CERTIFICATE)
        provenance.sign(_one_pixel_png(), "image/png", provenance.MadeBy.for_model("check"), key)
    except Exception as error:
        return [
            Error(
                f"The C2PA signer cannot sign: {error}",
                hint="C2PA_SIGNING_KEY must be the PEM private key of the first certificate in "
                "C2PA_CERTIFICATE, a certificate C2PA accepts (not self-signed, digitalSignature "
                "key usage, an extended key usage such as emailProtection).",
                id="api.E001",
            )
        ]
    return []


def _one_pixel_png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (1, 1)).save(out, "PNG")
    return out.getvalue()
