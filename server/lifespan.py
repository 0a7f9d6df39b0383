"""What a served web process does as it starts and stops, for the apps that need it.

The ASGI lifespan protocol (server/asgi.py) runs the startup hooks once the loop's database
pool is up, before the first request, and the shutdown hooks after the server has drained its
connections, before the pool closes. Apps register theirs in ``AppConfig.ready()``; hooks run
in the order they were registered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Hook = Callable[[], Awaitable[None]]

_startup: list[Hook] = []
_shutdown: list[Hook] = []


def on_startup(hook: Hook) -> Hook:
    if hook not in _startup:
        _startup.append(hook)
    return hook


def on_shutdown(hook: Hook) -> Hook:
    if hook not in _shutdown:
        _shutdown.append(hook)
    return hook


async def startup() -> None:
    for hook in _startup:
        await hook()


async def shutdown() -> None:
    for hook in _shutdown:
        await hook()
