"""The command line: ``python -m simulator``; ``manage.py run_simulator`` shares its options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import DEFAULT_API_KEY, DEFAULT_PORT
from .server import run


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be within 0 to 65535, not {port}")
    return port


def _latency(value: str) -> float:
    latency = float(value)
    if latency < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return latency


def add_arguments(
    parser: argparse.ArgumentParser, *, port: int = DEFAULT_PORT, api_key: str = DEFAULT_API_KEY
) -> None:
    """The simulator's options, with the given defaults for the port and the key."""
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind.")
    parser.add_argument(
        "--port",
        type=_port,
        default=port,
        help="Port to bind (default %(default)s; 0 picks a free port).",
    )
    parser.add_argument(
        "--api-key", default=api_key, help="Bearer key clients must send (default %(default)s)."
    )
    parser.add_argument(
        "--latency",
        type=_latency,
        default=0.0,
        help="Seconds added before every generation answer.",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="Base URL of the image links it returns (default http://HOST:PORT).",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Serve a simulator of the Seedream upstream (POST /api/v3/images/generations).",
    )
    add_arguments(parser)
    # The options are named after run()'s keyword arguments.
    run(**vars(parser.parse_args(argv)))
