"""The Standard Webhooks headers of one attempt, signed with the ``standardwebhooks`` library.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``; while
an endpoint's previous secret is still honoured after a rotation, both signatures are sent,
separated by a space (every verifier accepts a header when any one of them matches).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def headers(
    secrets: Sequence[str], *, webhook_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The three headers for ``body`` sent at ``timestamp`` (whole seconds are signed)."""
    signatures = [
        Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body)
        for secret in secrets
    ]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
