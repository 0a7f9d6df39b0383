"""A finished generation announced to its owner's webhook endpoints (the webhooks app signs and
delivers it on the workers). An announcement never blocks or changes the generation: it is made
after the settlement that finished it, and a failure to record it is logged, not raised."""

from __future__ import annotations

import logging

from webhooks import events
from webhooks import services as webhooks

from ..models import Generation, JobStatus

logger = logging.getLogger(__name__)

_EVENT_TYPES = {
    JobStatus.COMPLETED: events.IMAGE_GENERATION_COMPLETED,
    JobStatus.FAILED: events.IMAGE_GENERATION_FAILED,
    JobStatus.CANCELLED: events.IMAGE_GENERATION_CANCELLED,
}


def announce_finished(generation_id: int, account_id: int) -> None:
    """Publish the generation's ``image.generation.*`` event, once (its id is the event's key),
    if its owner has an endpoint. One query for an owner without one."""
    try:
        if not webhooks.has_endpoints(account_id):
            return
        generation = Generation.objects.select_related("account").get(pk=generation_id)
        status = generation.job_status
        event_type = _EVENT_TYPES.get(status)
        if event_type is None:  # not finished: nothing to say yet
            return
        webhooks.publish(
            generation.account,
            event_type,
            {
                "id": generation.public_id,
                "object": "image.generation",
                "status": status,
                "model": generation.model,
                "images_delivered": generation.images_delivered,
                "credits_charged": generation.charged_credits,
            },
            event_key=generation.public_id,
        )
    except Exception:
        logger.exception("generation %s: its webhook event could not be recorded", generation_id)
