"""The docs' Spend controls section says what the API does: its refusals as /v1 answers them,
its headers, and how the server learns a client's address (as the Procfile runs it)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from tests.dashboard.test_docs_page import docs, section

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]


def test_the_section_names_the_refusals_headers_and_pages(client, db):
    spend = section(docs(client), "spend-controls")

    for code in ("key_budget_exceeded", "model_not_allowed", "ip_not_allowed"):
        assert f"<code>{code}</code>" in spend
    for header in ("x-key-budget-limit", "x-key-budget-remaining", "x-key-budget-reset"):
        assert f"<code>{header}</code>" in spend
    assert 'href="/dashboard/alerts/"' in spend
    assert 'href="/dashboard/webhooks/"' in spend
    assert "<code>credits.low</code>" in spend


def test_the_example_bodies_are_openai_shaped_errors(client, db):
    spend = section(docs(client), "spend-controls")

    bodies = {}
    for name in ("cap", "model", "address"):
        match = re.search(
            rf'<pre id="spend-example-{name}"[^>]*><code>(.*?)</code></pre>', spend, re.S
        )
        assert match, name
        text = html.unescape(match.group(1))
        bodies[name] = json.loads(text[text.index("{") :])["error"]
    assert bodies["cap"]["code"] == "key_budget_exceeded"
    assert bodies["model"]["param"] == "model"
    assert bodies["address"]["type"] == "permission_error"
    for error in bodies.values():
        assert set(error) == {"message", "type", "code", "param"}
        assert "http://testserver/dashboard/keys/42/spend/" in error["message"]


def test_what_it_says_of_proxies_is_how_the_procfile_runs_the_server(client, db):
    spend = html.unescape(section(docs(client), "spend-controls"))
    web = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )

    quoted = re.search(r"<code>(--proxy-headers --forwarded-allow-ips [^<]+)</code>", spend)
    assert quoted
    assert quoted.group(1) in web
