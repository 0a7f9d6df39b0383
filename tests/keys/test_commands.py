"""The create_api_key management command."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from keys.models import ApiKey
from keys.services import authenticate


def run(*args: str) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def test_it_prints_the_raw_key_alone_on_the_last_line(owner):
    stdout, stderr = run(owner.email)

    last_line = stdout.splitlines()[-1]
    assert re.fullmatch(r"sk-seedream-[0-9a-f]{16}_[A-Za-z0-9]{43}", last_line)
    assert stdout.endswith(last_line + "\n")
    assert last_line not in stderr


def test_the_printed_key_authenticates_as_that_user(owner, outsider):
    stdout, _ = run(owner.email)

    api_key = authenticate(stdout.splitlines()[-1])

    assert api_key.user == owner
    assert api_key.name == "CLI key"
    assert not outsider.api_keys.exists()


def test_it_names_the_key_as_asked(owner):
    stdout, stderr = run(owner.email, "--name", "Deploy bot")

    api_key = authenticate(stdout.splitlines()[-1])
    assert api_key.name == "Deploy bot"
    assert list(owner.api_keys.values_list("name", flat=True)) == ["Deploy bot"]
    assert "Deploy bot" in stderr
    assert owner.email in stderr


def test_it_finds_the_user_whatever_the_case_of_the_email(owner):
    stdout, _ = run(owner.email.upper())

    assert authenticate(stdout.splitlines()[-1]).user == owner


def test_it_refuses_an_unknown_email(owner):
    with pytest.raises(CommandError, match=re.escape("nobody@example.com")):
        run("nobody@example.com")

    assert not ApiKey.objects.exists()


def test_it_refuses_a_blank_name(owner):
    with pytest.raises(CommandError, match="name"):
        run(owner.email, "--name", "   ")

    assert not ApiKey.objects.exists()
