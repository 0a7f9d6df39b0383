"""allauth's pages and emails speak in sentence case, like the rest of the site: our catalog
(locale/en/LC_MESSAGES) rewords each of its Title Case strings."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import allauth
import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from tests.support.simulator import PROJECT_ROOT

OURS = PROJECT_ROOT / "locale" / "en" / "LC_MESSAGES"
ALLAUTH_PO = Path(allauth.__file__).parent / "locale" / "en" / "LC_MESSAGES" / "django.po"
# Words that keep their capitals in sentence case.
ACRONYMS = {"TOTP", "IP", "ID", "I"}


def po_entries(path: Path) -> dict[tuple[str | None, str], str]:
    """(msgctxt, msgid) -> msgstr of a .po file's singular entries."""

    def text(lines: str) -> str:
        joined = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', lines))
        return joined.encode().decode("unicode_escape")

    entries = {}
    for block in path.read_text().split("\n\n"):
        if "msgid_plural" in block:
            continue
        msgid = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        msgstr = re.search(r'^msgstr ((?:".*"\n?)+)', block, re.M)
        context = re.search(r'^msgctxt ((?:".*"\n?)+)', block, re.M)
        if msgid and msgstr and text(msgid.group(1)):
            key = (text(context.group(1)) if context else None, text(msgid.group(1)))
            entries[key] = text(msgstr.group(1))
    return entries


def is_title_case(label: str) -> bool:
    """A short label (not a sentence) with a capitalised word after its first."""
    if len(label) > 50 or "\n" in label or ". " in label or label.endswith(".") or "<" in label:
        return False
    words = re.findall(r"[A-Za-z][\w'%()-]*", label)
    later = [part for word in words[1:] for part in word.split("-")]
    later += [part for part in words[0].split("-")[1:]] if words else []
    return any(w[:1].isupper() and w[1:].islower() and w not in ACRONYMS for w in later)


def test_the_compiled_catalog_is_the_source_compiled():
    with (OURS / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for (context, msgid), msgstr in po_entries(OURS / "django.po").items():
        found = compiled.pgettext(context, msgid) if context else compiled.gettext(msgid)
        assert found == msgstr, f"django.mo is stale for {msgid!r}: msgfmt -o django.mo django.po"


def test_every_title_case_label_of_allauth_is_reworded():
    ours = po_entries(OURS / "django.po")
    missing = [key for key in po_entries(ALLAUTH_PO) if is_title_case(key[1]) and key not in ours]
    assert missing == [], f"add these to {OURS / 'django.po'}: {missing}"
    for (_, msgid), msgstr in ours.items():
        assert not is_title_case(msgstr), msgstr
        assert msgstr.lower().replace(" ", "") == msgid.lower().replace(" ", "")


@pytest.mark.parametrize(
    ("msgid", "expected"),
    [("Sign In", "Sign in"), ("Two-Factor Authentication", "Two-factor authentication")],
)
def test_django_reads_our_wording(msgid, expected):
    with translation.override("en-us"):
        assert translation.gettext(msgid) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("/accounts/login/", "Sign in"),
        ("/accounts/signup/", "Sign up"),
        ("/accounts/password/reset/", "Password reset"),
    ],
)
def test_the_entrance_pages_are_in_sentence_case(client: Client, path, heading):
    cache.clear()
    page = client.get(path).content.decode()
    assert re.search(rf"<title>\s*{heading}\s*· Seedream API</title>", page)
    assert re.search(rf"<h1[^>]*>\s*{heading}\s*</h1>", page)
    for title_case in ("Sign In", "Sign Up", "Password Reset", "Remember Me"):
        assert title_case not in page
