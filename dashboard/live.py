"""How a playground generation is shown while it runs and once it is done, in the customer's
words rather than the API's error codes."""

from __future__ import annotations

from generation.models import Generation

# Error code -> what the customer reads. Every failed generation was charged nothing.
_EXPLANATIONS = {
    "insufficient_quota": "Not enough credits for this request. Add credits on the billing page.",
    "content_policy_violation": "The content filter blocked this prompt or its picture. "
    "Try describing it differently.",
    "upstream_busy": "The image service is busy right now. Try again in a minute.",
    "upstream_timeout": "The image service took too long to answer. Try again in a minute.",
    "service_unavailable": "Image generation is unavailable right now. Try again later.",
    "upstream_error": "The image service failed to make the picture. Try again.",
    "storage_error": "The picture was made but could not be saved. Try again in a minute.",
    "expired": "The image service did not answer in time.",
    "model_not_priced": "This model is not on sale right now.",
}


def explain(generation: Generation) -> str:
    """One sentence on why a generation failed, or on the images it could not deliver."""
    if generation.status == Generation.Status.FAILED:
        return _EXPLANATIONS.get(generation.error_code, generation.error_message)
    if generation.images_delivered < generation.n and generation.is_finished:
        return generation.error_message
    return ""


def progress_label(generation: Generation) -> str:
    return {
        Generation.Status.QUEUED: "Waiting for a worker…",
        Generation.Status.RUNNING: "Generating…",
        Generation.Status.SUCCEEDED: "Done",
        Generation.Status.FAILED: "Failed",
    }[Generation.Status(generation.status)]
