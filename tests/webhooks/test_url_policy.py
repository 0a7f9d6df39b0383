"""Which URLs may be endpoints (webhooks/policy.py): https and public hosts on a public site;
http and loopback too in the embedded default, so a developer can receive on their machine."""

from __future__ import annotations

from typing import Any

import pytest

from webhooks.policy import URL_MAX_CHARS, EndpointUrlError, check_endpoint_url

BAD_ANYWHERE = [
    ("", "is empty."),
    ("ftp://example.com/hook", "must start with https://."),
    ("example.com/hook", "must start with https://."),
    ("javascript:alert(1)", "must start with https://."),
    ("https://user:pw@example.com/hook", "must not contain a user name or password."),
    ("https://example.com/hook#part", "must not have a #fragment: it is never sent."),
    ("https:///hook", "has no host."),
    ("https://example.com:99999/hook", "is not a valid URL."),
    ("https://exa mple.com/hook", "contains spaces or control characters."),
    ("https://example.com/\nhook", "contains spaces or control characters."),
    ("https://example.com/" + "a" * URL_MAX_CHARS, f"is longer than {URL_MAX_CHARS} characters."),
]  # fmt: skip

REFUSED_IN_PRODUCTION = [
    ("http://example.com/hook", "must start with https://."),
    ("https://127.0.0.1/hook", "points to a private, loopback"),
    ("https://[::1]:8443/hook", "points to a private, loopback"),
    ("https://10.1.2.3/hook", "points to a private, loopback"),
    ("https://192.168.1.10/hook", "points to a private, loopback"),
    ("https://169.254.169.254/latest/meta-data", "points to a private, loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "points to a private, loopback"),
    ("https://100.64.0.1/hook", "points to a private, loopback"),
    ("https://0.0.0.0/hook", "points to a private, loopback"),
    ("https://127.1/hook", "has a host that is not a valid address."),
    ("https://2130706433/hook", "has a host that is not a valid address."),
    ("https://localhost/hook", "names a local host, not a public one."),
    ("https://db.internal/hook", "names a local host, not a public one."),
    ("https://printer.local/hook", "names a local host, not a public one."),
    ("https://intranet/hook", "names a local host, not a public one."),
    ("https://[fe80::1%25eth0]/hook", "IPv6 zone"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "message"), BAD_ANYWHERE)
@pytest.mark.parametrize("private_allowed", [True, False])
def test_a_bad_url_is_refused_with_a_clear_message(
    settings: Any, url: str, message: str, private_allowed: bool
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = private_allowed
    with pytest.raises(EndpointUrlError) as refusal:
        check_endpoint_url(url)
    assert refusal.value.message == f"The endpoint URL {message}"


@pytest.mark.parametrize(("url", "message"), REFUSED_IN_PRODUCTION)
def test_a_public_site_refuses_http_and_non_public_hosts(
    production: Any, url: str, message: str
) -> None:
    with pytest.raises(EndpointUrlError) as refusal:
        check_endpoint_url(url)
    assert message in refusal.value.message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hooks", "http://localhost:3000/webhooks", "https://10.0.0.5/x",
     "http://[::1]:8080/"],
)  # fmt: skip
def test_the_embedded_default_allows_loopback_and_http(settings: Any, url: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    check_endpoint_url(url)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://hooks.example.com/seedream", "https://hooks.example.com/seedream"),
        ("  https://Hooks.Example.com:8443/a?b=c  ", "https://hooks.example.com:8443/a?b=c"),
        ("https://93.184.215.14/hook", "https://93.184.215.14/hook"),
        ("https://例え.jp/hook", "https://xn--r8jz45g.jp/hook"),
    ],
)
def test_a_public_https_url_is_accepted_as_it_will_be_reached(
    production: Any, url: str, stored: str
) -> None:
    assert check_endpoint_url(url) == stored
