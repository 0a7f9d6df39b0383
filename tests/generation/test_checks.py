"""The deploy checks warn when customers would be paying for simulated images, and when images
would go out without a signed C2PA manifest; a configured signer that cannot sign fails."""

from __future__ import annotations

import secrets
import subprocess
import sys

from generation import dev_signer
from generation.checks import upstream_is_real
from tests.support.simulator import PROJECT_ROOT


def test_the_deploy_check_warns_about_the_simulator(settings):
    settings.USE_SIMULATOR = True
    assert [w.id for w in upstream_is_real(None)] == ["api.W001"]
    settings.USE_SIMULATOR = False
    assert upstream_is_real(None) == []


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    production = {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": "",
        "SITE_URL": "https://seedream.example.com",
        "ALLOWED_HOSTS": "seedream.example.com",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "EMAIL_HOST": "smtp.example.com",
        "UPSTREAM_API_KEY": "ark-key",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT_ROOT, env=production | env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_warns_until_the_operators_c2pa_signer_is_configured(tmp_path):
    unsigned = check_deploy(tmp_path)
    assert unsigned.returncode == 0, unsigned.stderr
    assert "(api.W002) No C2PA signer is configured" in unsigned.stdout + unsigned.stderr

    key_pem, signer_pem, _ = dev_signer.make_pems()
    (tmp_path / "key.pem").write_text(key_pem)
    (tmp_path / "chain.pem").write_text(signer_pem)
    signed = check_deploy(
        tmp_path,
        C2PA_SIGNING_KEY_FILE=str(tmp_path / "key.pem"),
        C2PA_CERTIFICATE_FILE=str(tmp_path / "chain.pem"),
    )
    assert signed.returncode == 0, signed.stderr
    assert "api.W002" not in signed.stdout + signed.stderr
    assert "api.E001" not in signed.stdout + signed.stderr


def test_a_c2pa_key_that_is_not_the_certificates_stops_the_check(tmp_path):
    _, signer_pem, _ = dev_signer.make_pems()
    other_key, _, _ = dev_signer.make_pems()
    (tmp_path / "key.pem").write_text(other_key)
    (tmp_path / "chain.pem").write_text(signer_pem)

    result = check_deploy(
        tmp_path,
        C2PA_SIGNING_KEY_FILE=str(tmp_path / "key.pem"),
        C2PA_CERTIFICATE_FILE=str(tmp_path / "chain.pem"),
    )

    assert result.returncode != 0
    assert "(api.E001) The C2PA signer cannot sign" in result.stderr
    assert other_key.splitlines()[1] not in result.stdout + result.stderr
