"""Load for the fault tests: concurrent generation requests, over raw HTTP (httpx) or through
the official ``openai`` SDK, and the small waits the tests need while a fault plays out."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx
import openai
from openai.types import ImagesResponse

from generation.models import Generation

MODEL = "seedream-4-0"
SIZE = "1024x1024"
ResponseFormat = Literal["url", "b64_json"]
FORMATS: tuple[ResponseFormat, ...] = ("url", "b64_json")


@dataclass(frozen=True)
class Call:
    """One generation request: whose key, which prompt (and its ``[sim:...]`` markers)."""

    key: str
    prompt: str
    n: int = 1
    response_format: ResponseFormat = "url"
    size: str = SIZE

    def body(self) -> dict[str, object]:
        return {
            "model": MODEL,
            "prompt": self.prompt,
            "size": self.size,
            "n": self.n,
            "response_format": self.response_format,
        }


def unique(text: str) -> str:
    """``text`` made unique, so the simulator's per-prompt counters and the rows are this test's."""
    return f"{text} {uuid.uuid4().hex[:10]}"


def generate_concurrently(
    base_url: str, calls: Sequence[Call], *, timeout: float = 60
) -> list[httpx.Response | httpx.HTTPError]:
    """Send every call at once over raw HTTP; each answer, or the transport error a call ended
    with (a server killed under it), in the order of ``calls``."""

    async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
        return await client.post(
            "/v1/images/generations",
            content=json.dumps(call.body()),
            headers={"Authorization": f"Bearer {call.key}", "Content-Type": "application/json"},
        )

    async def send_all() -> list[httpx.Response | BaseException]:
        limits = httpx.Limits(max_connections=len(calls) or 1)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=timeout, limits=limits, trust_env=False
        ) as client:
            return await asyncio.gather(
                *(send(client, call) for call in calls), return_exceptions=True
            )

    results = asyncio.run(send_all())
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, httpx.HTTPError):
            raise result
    return results  # type: ignore[return-value]


def sdk_generate_concurrently(
    base_url: str, calls: Sequence[Call], *, timeout: float = 60
) -> list[ImagesResponse | openai.APIError]:
    """Send every call at once through the official SDK (no retries: each call is one request,
    so what the customer is told for it is what the test sees); each result or the SDK's error,
    in the order of ``calls``."""

    def send(call: Call) -> ImagesResponse | openai.APIError:
        client = openai.OpenAI(
            base_url=f"{base_url}/v1", api_key=call.key, max_retries=0, timeout=timeout
        )
        try:
            return client.images.generate(
                model=MODEL,
                prompt=call.prompt,
                size=call.size,
                n=call.n,
                response_format=call.response_format,
            )
        except openai.APIError as error:
            return error
        finally:
            client.close()

    with ThreadPoolExecutor(max(len(calls), 1)) as pool:
        return list(pool.map(send, calls))


def simulator_calls(simulator_url: str, prompt: str) -> int:
    """How many generation calls the simulator has received with exactly ``prompt``."""
    base = simulator_url.removesuffix("/api/v3")
    return int(httpx.get(f"{base}/_sim/calls", params={"prompt": prompt}).json()["calls"])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took. ``timeout`` only bounds a
    test that would otherwise hang: it is never the thing tested."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting until {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def running(prompt: str) -> bool:
    return Generation.objects.filter(prompt=prompt, status=Generation.Status.RUNNING).exists()
