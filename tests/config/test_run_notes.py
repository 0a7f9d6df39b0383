"""`make run` says when SUPPORT_EMAIL is unset (bin/run_notes.py), and is quiet once it is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.smoke


def notes(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORT_EMAIL")}
    return subprocess.run(
        [sys.executable, "bin/run_notes.py"],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_unset_support_email_gets_one_line_saying_how_to_set_it():
    result = notes()
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1
    assert "SUPPORT_EMAIL is not set" in result.stdout
    assert "SUPPORT_EMAIL=support@example.com make run" in result.stdout


@pytest.mark.parametrize(
    "env", [{"SUPPORT_EMAIL": "help@example.com"}, {"SUPPORT_EMAIL_FILE": "/run/secrets/support"}]
)
def test_a_set_support_email_is_quiet(env):
    result = notes(**env)
    assert (result.returncode, result.stdout) == (0, "")


def test_make_run_prints_the_notes():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") : makefile.index("\ntest:")]
    assert "bin/run_notes.py" in run
