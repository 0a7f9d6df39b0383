"""The deploy check warns when customers would be paying for simulated images."""

from __future__ import annotations

from generation.checks import upstream_is_real


def test_the_deploy_check_warns_about_the_simulator(settings):
    settings.USE_SIMULATOR = True
    assert [w.id for w in upstream_is_real(None)] == ["api.W001"]
    settings.USE_SIMULATOR = False
    assert upstream_is_real(None) == []
