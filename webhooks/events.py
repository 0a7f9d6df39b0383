"""The event types endpoints can subscribe to. This app knows nothing of what they mean: an
event is a type and a data dict given to ``services.publish``.

To offer a new type, add it to ``EVENT_TYPES`` (with the words the dashboard shows for it);
endpoints choose from that list.
"""

from __future__ import annotations

IMAGE_GENERATION_COMPLETED = "image.generation.completed"
IMAGE_GENERATION_FAILED = "image.generation.failed"
IMAGE_GENERATION_CANCELLED = "image.generation.cancelled"
CREDITS_LOW = "credits.low"
# Sent only by "Send test event" on the dashboard, to that one endpoint (no subscription needed).
WEBHOOK_TEST = "webhook.test"

# What an endpoint may subscribe to, in the order the dashboard lists them.
EVENT_TYPES: dict[str, str] = {
    IMAGE_GENERATION_COMPLETED: "An image generation finished and its images are ready.",
    IMAGE_GENERATION_FAILED: "An image generation failed.",
    IMAGE_GENERATION_CANCELLED: "An image generation was cancelled.",
    CREDITS_LOW: "Your credit balance fell below your low-balance alert.",
}

TYPE_MAX_CHARS = 64
