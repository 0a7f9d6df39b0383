"""The image store unwritable, then full, under a running web process: each generation that
cannot be stored answers 503 ``storage_error`` (never a 500) and is charged nothing, no partial
file is left behind (the images folder holds the files of succeeded images and nothing else),
no slot or hold is left, and once the store takes writes again the same process serves and
charges as before.

- Unwritable: the store's ``images`` folder replaced by a regular file (the tests run as root,
  so permissions would not stop a write; a file where a folder should be does, with ENOTDIR).
- Full: the web process's MEDIA_ROOT is a tmpfs of a few megabytes of the test's own
  (tests/support/tmpfs.py), filled with 4K photographs (``[sim:photo]``, about 4 MB each) until
  a write fails half way with ENOSPC; then given more room while mounted.

The orphan sweep (a beat task, ORPHAN_SWEEP_EVERY_SECONDS) runs in a worker beside the first:
an old file no image names is removed, and the images' own files stay.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import ImagesResponse

from generation.models import Generation, Image
from tests.support.money import balance
from tests.support.server import server_process
from tests.support.tmpfs import mounted_tmpfs
from tests.support.worker import running_worker

from .books import Customer, assert_books_balance_and_nothing_held
from .conftest import Customers, Processes
from .load import (
    FORMATS,
    Call,
    generate_concurrently,
    sdk_generate_concurrently,
    unique,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PRICE = 40  # seedream-4-0 at 1024x1024
PRICE_4K = 60  # seedream-4-0 above 2048x2048
CREDITS = 5000
# A 4K photograph is rendered and fetched whole: room for that on a busy two-core machine.
TIMEOUTS = {
    "UPSTREAM_TIMEOUT_SECONDS": "30",
    "UPSTREAM_IMAGE_TIMEOUT_SECONDS": "30",
    "GENERATION_TIMEOUT_SECONDS": "60",
}
ROUNDS = 8  # at most this many rounds of 4K photographs to fill the tmpfs (two fit in it)


def store_env(fault_env: dict[str, str], tmp_path: Path, media: Path) -> dict[str, str]:
    return {
        **fault_env,
        **TIMEOUTS,
        "DATA_DIR": str(tmp_path / "data"),  # this test's own broker folder
        "MEDIA_ROOT": str(media),
    }


def price_of(call: Call) -> int:
    return (PRICE_4K if call.size == "4K" else PRICE) * call.n


def mixed_calls(customer: Customer, what: str) -> tuple[list[Call], list[Call]]:
    """Generations of one and of two images, as URLs and as base64, four of them: (over raw
    HTTP, through the SDK)."""
    raw = [
        Call(customer.key, unique(what), n=2),
        Call(customer.key, unique(f"{what} [sim:photo]"), response_format="b64_json", size="4K"),
    ]
    sdk = [
        Call(customer.key, unique(what), response_format="b64_json"),
        Call(customer.key, unique(f"{what} [sim:photo]"), n=2, size="4K"),
    ]
    return raw, sdk


def send(base_url: str, raw: list[Call], sdk: list[Call]) -> list[tuple[Call, Any]]:
    answers = list(zip(raw, generate_concurrently(base_url, raw), strict=True))
    return answers + list(zip(sdk, sdk_generate_concurrently(base_url, sdk), strict=True))


def served(answer: Any) -> bool:
    return isinstance(answer, ImagesResponse) or (
        isinstance(answer, httpx.Response) and answer.status_code == 200
    )


def assert_storage_error(call: Call, answer: Any) -> None:
    """503 ``storage_error`` in OpenAI's shape, saying nothing was charged; and nothing was."""
    if isinstance(answer, openai.APIStatusError):
        status, error = answer.status_code, answer.body
    else:
        assert isinstance(answer, httpx.Response), answer
        status, error = answer.status_code, answer.json()["error"]
    assert status == 503, (call, status, error)
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("server_error", "storage_error"), error
    assert error["message"].endswith("You were not charged."), error
    generation = Generation.objects.get(prompt=call.prompt)
    assert (generation.status, generation.charged_credits, generation.images_delivered) == (
        "failed",
        0,
        0,
    )


def stored_files(media: Path) -> set[str]:
    folder = media / "images"
    if not folder.is_dir():
        return set()
    return {path.relative_to(media).as_posix() for path in folder.rglob("*") if path.is_file()}


def assert_only_succeeded_images_stored(media: Path) -> None:
    """The images folder holds exactly the files of the images of succeeded generations."""
    named = set(Image.objects.values_list("file", flat=True))
    assert stored_files(media) == named
    assert not Image.objects.exclude(generation__status="succeeded").exists()


def assert_answered_normally(base_url: str, customer: Customer, what: str) -> int:
    """Generations of every kind served and charged again; returns what they cost."""
    raw, sdk = mixed_calls(customer, what)
    for call, answer in send(base_url, raw, sdk):
        assert served(answer), (call, answer)
        generation = Generation.objects.get(prompt=call.prompt)
        assert (generation.status, generation.charged_credits) == ("succeeded", price_of(call))
    return sum(price_of(call) for call in raw + sdk)


def test_an_unwritable_image_store_answers_storage_error_and_the_process_recovers(
    fault_env: dict[str, str],
    processes: Processes,
    customers: Customers,
    tmp_path: Path,
):
    alice = customers.open(CREDITS)
    media = tmp_path / "media"
    env = {
        **store_env(fault_env, tmp_path, media),
        "ORPHAN_SWEEP_EVERY_SECONDS": "1",
        "ORPHAN_FILE_GRACE_SECONDS": "3600",
    }
    web, _ = processes.all_at_once(
        lambda: server_process(env),
        lambda: running_worker(env, beat_schedule=tmp_path / "beat-schedule"),
    )
    spent = assert_answered_normally(web.url, alice, "a dune")

    # The store stops taking writes: a file where its images folder was.
    images, kept = media / "images", media / "images.kept"
    images.rename(kept)
    images.write_text("not a folder")
    raw, sdk = mixed_calls(alice, "a dune")
    for call, answer in send(web.url, raw, sdk):
        assert_storage_error(call, answer)
    assert "Internal Server Error" not in web.log()
    assert balance(alice.user()) == CREDITS - spent
    assert stored_files(media) == set()  # not a folder: nothing could be written under it

    # Writable again: the same process serves and charges as before.
    images.unlink()
    kept.rename(images)
    assert_only_succeeded_images_stored(media)
    spent += assert_answered_normally(web.url, alice, "a dune")
    assert balance(alice.user()) == CREDITS - spent
    assert_only_succeeded_images_stored(media)

    # An old file that no image names (a crash's leftover) is swept by the beat task; an
    # image's own file as old stays.
    orphan = media / "images" / "zz" / "zzOrphanLeftByACrash0.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half a jpeg")
    named = media / Image.objects.order_by("pk").values_list("file", flat=True)[0]
    for path in (orphan, named):
        two_hours_ago = time.time() - 7200
        os.utime(path, (two_hours_ago, two_hours_ago))
    swept = wait_until(lambda: not orphan.exists(), "the orphan sweep removes the orphan")
    assert named.exists()
    assert_only_succeeded_images_stored(media)
    print(
        f"\nunwritable store: {len(raw + sdk)} generations answered 503 storage_error, none "
        f"charged; served again at once once writable; the orphan swept {swept:.1f} s after it "
        f"was planted (ORPHAN_SWEEP_EVERY_SECONDS=1)"
    )
    assert_books_balance_and_nothing_held()


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; how many bytes it took."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as handle:
        try:
            while True:
                written += handle.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return written


def test_a_full_image_store_answers_storage_error_and_the_process_recovers(
    fault_env: dict[str, str],
    processes: Processes,
    customers: Customers,
    tmp_path: Path,
):
    bob = customers.open(CREDITS)
    media = tmp_path / "media"
    with mounted_tmpfs(media, "10m") as store:
        web = processes.web(store_env(fault_env, tmp_path, media))
        spent, photos = 0, 0

        # 4K photographs, two at a time, until the store is full.
        refused = []
        for _ in range(ROUNDS):
            calls = [
                Call(bob.key, unique("a glacier [sim:photo]"), size="4K", response_format=f)
                for f in FORMATS
            ]
            for call, answer in zip(calls, sdk_generate_concurrently(web.url, calls), strict=True):
                if served(answer):
                    spent += price_of(call)
                    photos += 1
                else:
                    assert_storage_error(call, answer)
                    refused.append(call)
            if refused:
                break
        assert refused, f"{ROUNDS * 2} 4K photographs fit in 10 MB"
        assert photos >= 1
        # The write that ran out of room left nothing behind.
        assert_only_succeeded_images_stored(media)

        # Quite full (not even a small image fits): every kind of generation is refused.
        filler = media / "filler"
        fill(filler)
        raw, sdk = mixed_calls(bob, "a glacier")
        for call, answer in send(web.url, raw, sdk):
            assert_storage_error(call, answer)
        assert "Internal Server Error" not in web.log()
        assert balance(bob.user()) == CREDITS - spent
        assert_only_succeeded_images_stored(media)

        # Room again (an operator frees space): the same process serves and charges as before.
        filler.unlink()
        store.grow("64m")
        spent += assert_answered_normally(web.url, bob, "a glacier")
        assert balance(bob.user()) == CREDITS - spent
        assert_only_succeeded_images_stored(media)
        print(
            f"\nfull store (10 MB tmpfs): {photos} 4K photographs stored before a write ran out "
            f"of room; {len(refused)} + {len(raw + sdk)} generations answered 503 "
            f"storage_error, none charged, no partial file left; served again once it had room"
        )
        web.process.terminate()  # before the tmpfs goes
        web.process.wait(timeout=30)
    assert_books_balance_and_nothing_held()
