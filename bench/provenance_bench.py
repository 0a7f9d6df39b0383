"""The CPU that marking one image's provenance costs (generation/provenance.py). Prints figures.

For each picture (the simulator's pictures, rendered in this process: its plain JPEG and its
``[sim:photo]`` JPEG, as large as a photograph's, at 2048x2048 and 4096x4096; the photo also
re-encoded as PNG and WebP), it marks the picture ``--repeat`` times three ways and prints the
median CPU time of this thread per image:

- ``xmp``: the IPTC XMP alone (what production writes without a C2PA signer);
- ``xmp+c2pa``: the XMP, then a C2PA manifest signed with the development signer (ES256);
- ``c2pa``: the difference, the signing's own cost.

No server, no database: only the marking. The development signer is made in a temporary
DATA_DIR.

    .venv/bin/python bench/provenance_bench.py
    .venv/bin/python bench/provenance_bench.py --repeat 51 --only photo-2048
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_ms_per_call(work: Callable[[], object], repeat: int) -> float:
    work()  # warm: the first call loads libraries and the signer
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        work()
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def pictures() -> dict[str, tuple[str, bytes]]:
    from PIL import Image as PILImage

    from simulator.images import ImageSpec, render_jpeg

    def jpeg(kind: str, side: int) -> bytes:
        spec = ImageSpec.for_prompt(
            "[sim:photo] a benchmark fox",
            seed=7,
            size=(side, side),
            watermark=False,
            index=0,
            kind=kind,
        )
        return render_jpeg(spec)

    photo = jpeg("photo", 2048)
    made = {
        "jpeg-2048": ("jpeg", jpeg("jpeg", 2048)),
        "photo-2048": ("jpeg", photo),
        "photo-4096": ("jpeg", jpeg("photo", 4096)),
    }
    with PILImage.open(io.BytesIO(photo)) as picture:
        for image_format, options in (("png", {}), ("webp", {"quality": 90})):
            out = io.BytesIO()
            picture.save(out, image_format.upper(), **options)
            made[f"photo-2048.{image_format}"] = (image_format, out.getvalue())
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="marks per figure (median kept)")
    parser.add_argument("--only", help="one picture's name (photo-2048, jpeg-2048...)")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="provenance-bench-")
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=data_dir)
    import django

    django.setup()
    from django.conf import settings

    from generation import provenance

    made_by = provenance.MadeBy.for_model("seedream-4-0")
    print(f"{'picture':<18} {'bytes':>10} {'xmp ms':>8} {'xmp+c2pa ms':>12} {'c2pa ms':>8}")
    for name, (image_format, data) in pictures().items():
        if args.only and name != args.only:
            continue
        settings.C2PA_DEVELOPMENT_SIGNER = False
        xmp = cpu_ms_per_call(lambda: provenance.mark(data, image_format, made_by), args.repeat)  # noqa: B023
        settings.C2PA_DEVELOPMENT_SIGNER = True
        both = cpu_ms_per_call(lambda: provenance.mark(data, image_format, made_by), args.repeat)  # noqa: B023
        print(f"{name:<18} {len(data):>10,} {xmp:>8.2f} {both:>12.2f} {both - xmp:>8.2f}")


if __name__ == "__main__":
    main()
