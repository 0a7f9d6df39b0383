"""The admin reads well: its header names the site, and no two sections share a name."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client


def test_the_admin_is_named_after_the_site_and_its_sections_are_distinct(
    client: Client, user_factory: Any
) -> None:
    operator = user_factory(is_staff=True, is_superuser=True)
    client.force_login(operator)

    page = client.get("/admin/").content.decode()

    assert "<title>Administration | Seedream API admin</title>" in page
    assert ">Seedream API administration</a>" in page
    assert "Django" not in page
    sections = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', page)
    assert len(sections) == len(set(sections)), sections
    assert "Customers" in sections and "Sign-in" in sections
    assert "Accounts" not in sections
