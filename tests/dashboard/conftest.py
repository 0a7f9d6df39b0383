"""Fixtures the playground's tests share."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard import views_playground
from generation import services, tasks


@pytest.fixture
def commits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on_commit callbacks at once, as they would run after a real commit: a test's
    transaction never commits."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The generation ids handed to the broker (the broker itself is not needed here)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks, "send_generation", lambda pk, countdown=0: calls.append(pk))
    return calls


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The specs the playground hands to the domain, in order."""
    specs: list[Any] = []
    submit = services.submit_generation

    def spy(*, account: Any, user: Any, spec: Any) -> Any:
        specs.append(spec)
        return submit(account=account, user=user, spec=spec)

    monkeypatch.setattr(views_playground.services, "submit_generation", spy)
    return specs


@pytest.fixture
def signed_in(client: Any, owner: Any) -> Any:
    client.force_login(owner)
    return client
