"""``python -m simulator``: serve the Seedream upstream simulator (``--help`` lists the options)."""

from .cli import main

main()
