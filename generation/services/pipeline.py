"""A generation's life, written once: admit -> reserve -> run -> settle.

Every way in takes these coroutines: the /v1 API (after its key decorator has authenticated the
caller, api/auth.py), and the playground (``submit_generation``, whose run a Celery worker
takes up: generation/services/run.py). Each database step goes through the caller's ``Steps``
(server/steps.py): on a served process's event loop without a thread hop, on the request's
thread elsewhere, or on the caller's own thread for synchronous callers.

1. ``admit``: the rate limits (requests, images, a concurrency slot held by the generation).
2. ``reserve_generation`` (reserve.py): quote, record the row and hold the credits, at once.
3. ``run_generation``: the upstream calls (no database), then
4. ``settle_generation`` (settle.py): store what was delivered, charge it, release the rest.

A crash between 2 and 4 leaves a row past its deadline holding credits; the reconciler
(reconcile.py) releases it. Both 4 and the reconciler claim the row with a conditional UPDATE,
so the money is settled exactly once.
"""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction

from accounts.models import Account, User
from keys.models import ApiKey
from server.steps import Steps

from .. import ratelimits
from ..memory import Reservation
from ..models import Generation, new_public_id
from ..references import Reference
from ..spec import GenerationSpec
from . import inputs
from .reserve import is_idempotent_repeat, reserve_generation
from .run import produce_images
from .settle import Completed, release, release_slot, settle_generation
from .spend import check_model_allowed


async def admit(
    steps: Steps,
    account: Account,
    api_key: ApiKey | None,
    *,
    images: int = 0,
    slot_holder: str | None = None,
    slot_lease_seconds: float | None = None,
) -> ratelimits.Admission:
    """Count one request (and ``images``, and a slot for ``slot_holder``) against the limits of
    the account and the key, or raise RateLimited."""
    if steps.on_loop:
        return await ratelimits.aadmit(
            account,
            api_key,
            images=images,
            slot_holder=slot_holder,
            slot_lease_seconds=slot_lease_seconds,
        )
    return await steps.run(
        ratelimits.admit,
        account,
        api_key,
        images=images,
        slot_holder=slot_holder,
        slot_lease_seconds=slot_lease_seconds,
    )


async def open_generation(
    steps: Steps,
    *,
    account: Account,
    made_by_id: int,
    api_key: ApiKey | None,
    spec: GenerationSpec,
    source: str = Generation.Source.API,
    idempotency_key: str | None = None,
    request_hash: str = "",
    slot_lease_seconds: float | None = None,
    rate_headers: dict[str, str] | None = None,
    public_id: str | None = None,
    queued: bool = False,
) -> Generation:
    """Admit and reserve: ``account``'s generation, asked by its member ``made_by_id``, recorded
    with its credits held and its slot taken.
    ``rate_headers`` receives the limiter's headers as soon as they are known (a refusal after
    admission carries them too). ``queued``: an API job, which a worker runs (``submit_job``);
    it waits its turn in the queue rather than taking one of the account's concurrent
    generations."""
    public_id = public_id or new_public_id()
    # Outside the key's allowed models: refused before anything is counted or held.
    check_model_allowed(api_key, spec.model.id)
    # A repeat answered from the first request's result is a request, not new work.
    repeat = idempotency_key is not None and await steps.run(
        is_idempotent_repeat, account, idempotency_key
    )
    admission = await admit(
        steps,
        account,
        api_key,
        images=0 if repeat else spec.most_images,
        slot_holder=None if repeat or queued else public_id,
        slot_lease_seconds=slot_lease_seconds,
    )
    if rate_headers is not None:
        rate_headers.update(admission.headers)
    stored: list[inputs.StoredReference] = []
    try:
        if spec.references and not repeat:
            # Kept before anything is held, so a generation never exists without them.
            stored = await asyncio.to_thread(inputs.write_reference_files, spec.references)
        generation = await reserve_generation(
            steps,
            account=account,
            made_by_id=made_by_id,
            spec=spec,
            source=source,
            api_key=api_key,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            public_id=public_id,
            queued=queued,
        )
    except BaseException:
        # Nothing will run (refused, or a repeat answered from the first): the slot goes back.
        await release(steps, account.pk, api_key.pk if api_key else None, public_id)
        if stored:
            await asyncio.to_thread(inputs.delete_reference_files, stored)
        raise
    if stored:
        await steps.run(inputs.record_references, generation, stored)
    return generation


async def run_generation(
    steps: Steps,
    generation: Generation,
    *,
    started: float,
    memory: Reservation | None = None,
    references: tuple[Reference, ...] | None = None,
) -> Completed:
    """Produce the images and settle: what was delivered is charged, the rest released.
    ``started`` (time.monotonic()) is when the request arrived, for its latency. ``memory``,
    the process's bytes reserved for the images (generation/memory.py), is released once they
    are stored (or lost), whatever happens. ``references``: the reference images, when the
    caller has them in memory (else they are read back from where the generation keeps them)."""
    try:
        try:
            if references is None and generation.params.get("references"):
                references = await steps.run(inputs.load_references, generation)
            outcomes = await produce_images(generation, memory, references or ())
        except BaseException:
            # Unsettled now: the reconciler will fail and refund it; its slot goes back at once.
            await release_slot(steps, generation)
            raise
        latency_ms = int((time.monotonic() - started) * 1000)
        return await settle_generation(steps, generation, outcomes, latency_ms=latency_ms)
    finally:
        if memory is not None:
            memory.release()


async def submit_job(
    steps: Steps,
    *,
    api_key: ApiKey,
    spec: GenerationSpec,
    idempotency_key: str | None = None,
    request_hash: str = "",
    public_id: str | None = None,
    rate_headers: dict[str, str] | None = None,
) -> Generation:
    """An API job (``Prefer: respond-async``): admitted and reserved like any request, its
    credits held now, then run by a Celery worker exactly as the playground's are. The row is
    committed before its task is sent (``steps`` runs each statement in autocommit)."""
    from .. import tasks  # tasks imports the services

    generation = await open_generation(
        steps,
        account=api_key.account,
        made_by_id=api_key.user_id,
        api_key=api_key,
        spec=spec,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        rate_headers=rate_headers,
        public_id=public_id,
        queued=True,
    )
    await asyncio.to_thread(tasks.send_generation, generation.pk)
    return generation


def submit_generation(*, account: Account, user: User, spec: GenerationSpec) -> Generation:
    """The playground's request: admitted and reserved like the API's (the row queued), then a
    Celery task is sent once the row is committed (a worker must never look for a row it
    cannot see). The slot is held until the worker settles the generation."""
    from .. import tasks  # tasks imports the services

    generation = async_to_sync(open_generation)(
        Steps.inline(),
        account=account,
        made_by_id=user.pk,
        api_key=None,
        spec=spec,
        source=Generation.Source.PLAYGROUND,
        # Queued work, retried with backoff, may run until its deadline.
        slot_lease_seconds=settings.GENERATION_DEADLINE_SECONDS + 60,
    )
    transaction.on_commit(lambda: tasks.send_generation(generation.pk))
    return generation
