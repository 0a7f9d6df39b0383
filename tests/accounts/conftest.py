from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _no_rate_limit_counts_from_another_test() -> None:
    # The invitation limits count per user and per organisation in the cache, whose ids the
    # next test's database gives out again.
    cache.clear()
