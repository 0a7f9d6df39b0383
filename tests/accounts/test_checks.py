"""The deploy check fails a production whose mail would only reach its logs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accounts.checks import mail_goes_out
from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.smoke


def test_no_mail_server_is_an_error_of_the_deploy_check(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert [e.id for e in mail_goes_out(None)] == ["accounts.E001"]

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert mail_goes_out(None) == []


def test_check_deploy_exits_with_an_error_without_email_host(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DATABASE_URL": ""}
    run = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert run.returncode != 0
    assert "accounts.E001" in run.stderr + run.stdout
