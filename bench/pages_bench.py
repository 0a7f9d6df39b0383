"""Benchmark the dashboard pages that read a customer's whole history. Prints figures.

Creates a throwaway PostgreSQL database (``--server-url``, default the local server), migrates
it, and gives one customer 100,000 usage rows (the usage page) and 50,000 images (the gallery),
and another a year of history at eight requests a day (the overview). Then renders each page
in-process with Django's test client, ``--rounds`` times, and prints the median and p95 render
time and the number of queries.

Run: `.venv/bin/python bench/pages_bench.py` (needs PostgreSQL on 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER_URL = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "seedream_bench_pages"


def recreate_database(server_url: str) -> None:
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed(usage_rows: int, gallery_images: int) -> tuple[Any, Any]:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from generation.models import Generation, Image

    now = timezone.now()

    def row(user: User, when: datetime.datetime) -> Generation:
        return Generation(
            user=user, account=user.personal_account, model="seedream-4-0", upstream_model="u",
            prompt="a prompt", size="1K",
            n=1, status="succeeded", price_per_image_credits=40, reserved_credits=40,
            charged_credits=40, images_delivered=1, created_at=when, deadline_at=when,
            latency_ms=1500,
        )  # fmt: skip

    heavy = User.objects.create_user("usage@example.com", "pw")
    Generation.objects.bulk_create(
        (row(heavy, now - datetime.timedelta(seconds=i)) for i in range(usage_rows // 64 + 1)),
        batch_size=5000,
    )
    first_id = Generation.objects.filter(user=heavy).values_list("pk", flat=True).first()
    assert first_id is not None
    # Doubling in SQL: building 100,000 model instances in Python takes far longer.
    fields = [
        f.column for f in Generation._meta.concrete_fields if f.column not in ("id", "public_id")
    ]
    columns = ", ".join(fields)
    with connection.cursor() as cursor:
        for round_ in range(6):
            cursor.execute(
                f"INSERT INTO api_generation (public_id, {columns}) "  # noqa: S608
                f"SELECT public_id || '_{round_}', {columns} FROM api_generation "
                "WHERE user_id = %s",
                [heavy.pk],
            )
        cursor.execute("ANALYZE")
    images = [
        Image(
            generation_id=first_id,
            account=heavy.personal_account,
            token=f"bench{i:017d}",
            index=0,
            file=f"images/x/{i}.jpg",
            width=1024,
            height=1024,
            bytes=1,
            created_at=now - datetime.timedelta(seconds=i),
        )
        for i in range(gallery_images)
    ]
    Image.objects.bulk_create(images, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    year = User.objects.create_user("year@example.com", "pw")
    Generation.objects.bulk_create(
        (row(year, now - datetime.timedelta(hours=3 * i)) for i in range(8 * 365)),
        batch_size=5000,
    )
    return heavy, year


def measure(client: Any, url: str, rounds: int) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches and templates
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=SERVER_URL)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--usage-rows", type=int, default=100_000)
    parser.add_argument("--gallery-images", type=int, default=50_000)
    args = parser.parse_args()

    recreate_database(args.server_url)
    os.environ["DATABASE_URL"] = f"{args.server_url}/{DB_NAME}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the client see the page's template context
    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    heavy, year = seed(args.usage_rows, args.gallery_images)
    print(f"seeded in {time.perf_counter() - started:.1f} s")

    from generation.models import Generation

    cases = []
    client = Client()
    client.force_login(heavy)
    rows = Generation.objects.filter(user=heavy).count()
    cursor = client.get("/dashboard/usage/").context["page"].next_cursor
    cases += [
        (f"usage, first page ({rows} rows)", "/dashboard/usage/"),
        ("usage, second page", f"/dashboard/usage/?after={cursor}"),
        (
            "usage, filtered by model and status",
            "/dashboard/usage/?model=seedream-4-0&status=succeeded",
        ),
        ("overview (100,000 rows)", "/dashboard/"),
        (f"gallery, first page ({args.gallery_images} images)", "/dashboard/gallery/"),
        ("gallery, filtered by source", "/dashboard/gallery/?source=api"),
    ]
    results = [(name, *measure(client, url, args.rounds)) for name, url in cases]
    client.force_login(year)
    results.append(("overview (a year, 8/day)", *measure(client, "/dashboard/", args.rounds)))

    print(f"{'page':44} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    for name, median, p95, queries in results:
        print(f"{name:44} {median:10.1f} {p95:8.1f} {queries:8d}")


if __name__ == "__main__":
    main()
