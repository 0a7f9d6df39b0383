"""Fixtures the /v1 tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounts.models import User
from billing.models import LedgerEntry
from generation.models import Generation
from tests.support.money import assert_ledger_balanced


@pytest.fixture
def untouched(owner: User) -> Iterator[None]:
    """After the test: the owner's money and history are exactly as before, and no generation
    was recorded (a refused request charges and keeps nothing)."""
    before = (assert_ledger_balanced(owner), LedgerEntry.objects.count())
    yield
    assert (assert_ledger_balanced(owner), LedgerEntry.objects.count()) == before
    assert not Generation.objects.exists()
