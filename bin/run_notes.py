"""Print what an operator starting `make run` should know about settings left unset: one plain
line each, never an error (the product runs without them). Reads the environment only."""

import os

NOTES = {
    "SUPPORT_EMAIL": (
        "Note: SUPPORT_EMAIL is not set, so pages that tell customers to ask you (for credits, "
        "custom limits, refunds) cannot say where to write. Set it, e.g. "
        "`SUPPORT_EMAIL=support@example.com make run`."
    ),
}

for name, note in NOTES.items():
    if not (os.environ.get(name, "").strip() or os.environ.get(f"{name}_FILE", "").strip()):
        print(note)
