"""webhooks/sender.py against a real receiver on loopback: what is refused on a public site
(before any connection, or at the resolver), no redirects, the time limit, the bounded answer."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from webhooks import sender
from webhooks.sender import post_sync

BODY = b'{"object":"event"}'
HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


class FakeResolver(AbstractResolver):
    """DNS as the test says: ``name -> addresses``."""

    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses[host]
        ]  # fmt: skip

    async def close(self) -> None:
        pass


def named(url: str, host: str, scheme: str) -> str:
    return str(URL(url).with_host(host).with_scheme(scheme))


def test_it_posts_the_body_and_headers_and_keeps_the_answer(receiver: Any) -> None:
    outcome = post_sync(receiver.url, BODY, HEADERS)
    assert outcome.succeeded and outcome.status_code == 200 and outcome.error == ""
    assert outcome.response_excerpt == '{"received": true}'
    [request] = receiver.requests
    assert request.body == BODY
    assert {k.lower(): v for k, v in request.headers.items()}.items() >= {
        **HEADERS, "content-type": "application/json", "user-agent": sender.USER_AGENT,
    }.items()  # fmt: skip
    assert "Cookie" not in request.headers


def test_a_loopback_address_is_refused_on_a_public_site_before_any_connection(
    receiver: Any, production: Any
) -> None:
    outcome = post_sync(receiver.url.replace("http://", "https://"), BODY, HEADERS)
    assert not outcome.succeeded and outcome.status_code is None
    assert outcome.error.startswith("Refused: The endpoint URL points to a private, loopback")
    assert receiver.requests == []


def test_a_name_resolving_to_a_private_address_is_refused_at_the_connection(
    receiver: Any, production: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A public-looking name whose DNS answer is our own loopback (DNS rebinding, or a plain
    # A record pointing inside).
    dns = FakeResolver({"hooks.example.com": ["127.0.0.1", "10.0.0.7"]})
    monkeypatch.setattr(sender, "_inner_resolver", lambda: dns)
    outcome = post_sync(named(receiver.url, "hooks.example.com", "https"), BODY, HEADERS)
    assert outcome.error == "Refused: the endpoint's host resolves only to private addresses."
    assert receiver.requests == []


def test_the_embedded_default_delivers_to_a_name_on_loopback(
    receiver: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    dns = FakeResolver({"hooks.example.com": ["127.0.0.1"]})
    monkeypatch.setattr(sender, "_inner_resolver", lambda: dns)
    outcome = post_sync(named(receiver.url, "hooks.example.com", "http"), BODY, HEADERS)
    assert outcome.status_code == 200
    assert receiver.requests[0].headers["Host"].startswith("hooks.example.com")


def test_a_redirect_is_not_followed_and_is_a_failure(receiver: Any) -> None:
    receiver.statuses = [307]
    receiver.headers = {"Location": receiver.url + "/elsewhere"}
    outcome = post_sync(receiver.url, BODY, HEADERS)
    assert (outcome.status_code, outcome.succeeded) == (307, False)
    assert len(receiver.requests) == 1


def test_an_answer_after_the_time_limit_is_a_failure(receiver: Any, settings: Any) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.hold = True
    outcome = post_sync(receiver.url, BODY, HEADERS)
    assert (outcome.status_code, outcome.error) == (None, "No answer within 1 second.")
    assert len(receiver.requests) == 1


def test_only_the_first_bytes_of_the_answer_are_kept(receiver: Any) -> None:
    receiver.answer = b"\x00" + "é".encode() * 5000
    outcome = post_sync(receiver.url, BODY, HEADERS)
    assert outcome.status_code == 200
    # 512 bytes: the NUL (dropped), 255 whole characters, and half of the next (left out).
    assert outcome.response_excerpt == "é" * 255


@pytest.mark.parametrize(
    ("status", "succeeded"), [(200, True), (201, True), (204, True), (299, True), (300, False),
                              (400, False), (410, False), (500, False)]
)  # fmt: skip
def test_only_a_2xx_is_a_success(receiver: Any, status: int, succeeded: bool) -> None:
    receiver.statuses = [status]
    assert post_sync(receiver.url, BODY, HEADERS).succeeded is succeeded


def test_a_closed_port_is_a_connection_failure(settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = post_sync(f"http://127.0.0.1:{port}/hooks", BODY, HEADERS)
    assert outcome.error == "Could not connect to the endpoint."
