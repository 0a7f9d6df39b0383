"""The settings file reads the environment strictly: a typo fails at start-up, never silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from config.settings import env_bool, env_int, env_list, env_str
from tests.support.simulator import PROJECT_ROOT

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)],
)
def test_env_bool_takes_true_and_false_words(monkeypatch, raw, expected):
    monkeypatch.setenv("SEEDREAM_FLAG", raw)
    assert env_bool("SEEDREAM_FLAG", not expected) is expected


@pytest.mark.parametrize("default", [True, False])
@pytest.mark.parametrize("raw", ["", "  "])
def test_env_bool_reads_an_empty_value_as_unset(monkeypatch, raw, default):
    monkeypatch.setenv("SEEDREAM_FLAG", raw)
    assert env_bool("SEEDREAM_FLAG", default) is default


def test_env_bool_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("SEEDREAM_FLAG", "maybe")
    with pytest.raises(ValueError, match="SEEDREAM_FLAG must be true or false"):
        env_bool("SEEDREAM_FLAG", False)


def test_env_int_fails_loudly(monkeypatch):
    monkeypatch.setenv("SEEDREAM_NUMBER", "12s")
    with pytest.raises(ValueError, match="SEEDREAM_NUMBER must be a whole number"):
        env_int("SEEDREAM_NUMBER", 1)
    monkeypatch.setenv("SEEDREAM_NUMBER", " ")
    assert env_int("SEEDREAM_NUMBER", 7) == 7


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "pepper"
    secret.write_text("p1:abcdefghijklmnopqrstuvwxyz\n")
    monkeypatch.setenv("SEEDREAM_SECRET", "from-the-environment")
    monkeypatch.setenv("SEEDREAM_SECRET_FILE", str(secret))
    assert env_str("SEEDREAM_SECRET") == "p1:abcdefghijklmnopqrstuvwxyz"


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("SEEDREAM_HOSTS", " a.example.com, ,b.example.com ")
    assert env_list("SEEDREAM_HOSTS") == ["a.example.com", "b.example.com"]


def _settings_in_a_fresh_process(tmp_path, **env):
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'models': {k: v['upstream'][settings.UPSTREAM_CHANNEL][0] for k, v in "
        "settings.SEEDREAM_MODELS.items() if v['upstream'].get(settings.UPSTREAM_CHANNEL)}, "
        "'channel': settings.UPSTREAM_CHANNEL, 'sim': settings.USE_SIMULATOR, "
        "'base': settings.UPSTREAM_BASE_URL, 'db': settings.DATABASES['default']['ENGINE'], "
        "'cache': settings.CACHES['default']['BACKEND'], 'broker': settings.CELERY_BROKER_URL, "
        "'limits': settings.RATE_LIMIT_REDIS_URL, "
        "'db_options': {k: v for k, v in settings.DATABASES['default'].get('OPTIONS', {}).items() "
        "if k != 'pool'}}))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UPSTREAM_", "DATABASE_", "REDIS_", "CELERY_", "RATE_LIMIT_"))
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_with_no_environment_it_runs_on_sqlite_and_the_simulator(tmp_path):
    result = _settings_in_a_fresh_process(tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["sim"] is True
    assert loaded["base"].startswith("http://127.0.0.1:")
    assert loaded["db"] == "django.db.backends.sqlite3"
    assert (tmp_path / "secret_key").exists() and (tmp_path / "key_pepper").exists()


@pytest.mark.parametrize("pool", ["true", "false"])
def test_database_url_options_are_kept_beside_our_own(tmp_path, pool):
    result = _settings_in_a_fresh_process(
        tmp_path,
        DATABASE_URL="postgres://u@db.example:5432/seedream?sslmode=verify-full&connect_timeout=5",
        DB_POOL=pool,
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)["db_options"]
    assert options == {"sslmode": "verify-full", "connect_timeout": 5, "prepare_threshold": 5}


def test_the_model_map_points_models_at_other_upstream_ids(tmp_path):
    result = _settings_in_a_fresh_process(
        tmp_path,
        UPSTREAM_API_KEY="ark-key",
        UPSTREAM_BASE_URL="https://ark.cn-beijing.volces.com/api/v3",
        UPSTREAM_MODEL_MAP="seedream-4-0=doubao-seedream-4-0-250828, seedream-3-0=ep-123",
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    # A Volcengine base URL picks that channel's ids; the map replaces two of them.
    assert loaded["channel"] == "volcengine"
    assert loaded["models"]["seedream-4-0"] == "doubao-seedream-4-0-250828"
    assert loaded["models"]["seedream-3-0"] == "ep-123"
    assert loaded["models"]["seedream-5-5"] == "doubao-seedream-5-5-261028"
    assert "seedream-5-0-flash" not in loaded["models"]  # no Volcengine id known
    assert loaded["sim"] is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UPSTREAM_MODEL_MAP": "seedream-9=x"}, "UPSTREAM_MODEL_MAP"),
        ({"UPSTREAM_BASE_URL": "https://ark.example.com/api/v3"}, "UPSTREAM_API_KEY is empty"),
        ({"DEBUG": "perhaps"}, "DEBUG must be true or false"),
        ({"CREDITS_PER_USD": "a thousand"}, "CREDITS_PER_USD must be a whole number"),
        ({"WEB_MAX_IMAGE_BYTES_IN_FLIGHT": "-1"}, "WEB_MAX_IMAGE_BYTES_IN_FLIGHT must be 0"),
        ({"IMAGE_BODY_READ_TIMEOUT_SECONDS": "0"}, "IMAGE_BODY_READ_TIMEOUT_SECONDS must be 1"),
        ({"C2PA_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----"}, "C2PA_CERTIFICATE are set together"),
        ({"PROVENANCE_DIGITAL_SOURCE_TYPE": "trainedAlgorithmicMedia"}, "an IPTC digital source"),
    ],
)
def test_a_misconfiguration_stops_start_up_with_a_reason(tmp_path, env, message):
    result = _settings_in_a_fresh_process(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_image_paths_wait_long_enough_for_50_mib_over_2_mbit_s(tmp_path):
    """The body read timeouts with no environment: 30 s, and on the paths that take
    reference images (server/body_guard.py) long enough for their whole body cap to arrive at
    2 Mbit/s (a phone's weak uplink)."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.BODY_READ_TIMEOUT_SECONDS, "
        "settings.IMAGE_BODY_READ_TIMEOUT_SECONDS, settings.API_MAX_IMAGE_BODY_BYTES]))"
    )
    clean = {k: v for k, v in os.environ.items() if "BODY" not in k}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    body_seconds, image_body_seconds, image_body_bytes = json.loads(result.stdout)
    assert body_seconds == 30
    assert image_body_bytes == 50 * 1024 * 1024
    assert image_body_seconds >= image_body_bytes * 8 / 2_000_000  # 210 s


def test_one_redis_url_serves_the_cache_the_broker_and_the_rate_limits(tmp_path):
    alone = json.loads(_settings_in_a_fresh_process(tmp_path).stdout)
    assert alone["cache"].endswith("LocMemCache")
    assert alone["broker"] == "filesystem://" and alone["limits"] == ""

    result = _settings_in_a_fresh_process(tmp_path, REDIS_URL="redis://cache.internal:6379/0")
    assert result.returncode == 0, result.stderr
    shared = json.loads(result.stdout)
    assert shared["cache"] == "server.cache.RedisCacheWithFallback"
    assert shared["broker"] == shared["limits"] == "redis://cache.internal:6379/0"


def _https_settings(tmp_path, **env):
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'redirect': settings.SECURE_SSL_REDIRECT, "
        "'hsts': settings.SECURE_HSTS_SECONDS, "
        "'subdomains': settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "'preload': settings.SECURE_HSTS_PRELOAD, "
        "'cookies': [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE], "
        "'proxy': getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)}))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SITE_URL", "DEBUG", "TRUST_X_FORWARDED_PROTO"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_https_production_is_https_only_by_default(tmp_path):
    loaded = _https_settings(tmp_path, SITE_URL="https://seedream.example.com")
    assert loaded == {
        "redirect": True,
        "hsts": 365 * 24 * 3600,
        "subdomains": False,
        "preload": False,
        "cookies": [True, True],
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="make run"),
        pytest.param({"SITE_URL": "https://seedream.example.com", "DEBUG": "true"}, id="debug"),
    ],
)
def test_plain_http_and_debug_keep_the_https_defaults_off(tmp_path, env):
    loaded = _https_settings(tmp_path, **env)
    assert (loaded["redirect"], loaded["hsts"], loaded["proxy"]) == (False, 0, None)


def test_each_https_default_can_be_changed(tmp_path):
    loaded = _https_settings(
        tmp_path,
        SITE_URL="https://seedream.example.com",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        SECURE_COOKIES="false",
        TRUST_X_FORWARDED_PROTO="false",
    )
    assert loaded == {
        "redirect": False,
        "hsts": 600,
        "subdomains": True,
        "preload": True,
        "cookies": [False, False],
        "proxy": None,
    }


def _policy(tmp_path, **env):
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "IMAGE_BASE_URL", "CSP_", "STRIPE_", "GITHUB_", "GOOGLE_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATA_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("env", "image_origins"),
    [
        pytest.param({}, [], id="local files"),
        pytest.param(
            {"IMAGE_BASE_URL": "https://cdn.example.com/images"},
            ["https://cdn.example.com"],
            id="a CDN",
        ),
        pytest.param(
            {"S3_BUCKET": "pics", "S3_PUBLIC_BASE_URL": "https://pics.example.net/public"},
            ["https://pics.example.net"],
            id="a public bucket",
        ),
        pytest.param(
            {"S3_BUCKET": "pics", "S3_ENDPOINT_URL": "http://127.0.0.1:8080"},
            ["http://127.0.0.1:8080"],
            id="presigned, path style",
        ),
        pytest.param(
            {"S3_BUCKET": "pics", "S3_ENDPOINT_URL": "https://s3.example.net",
             "S3_ADDRESSING_STYLE": "virtual"},
            ["https://pics.s3.example.net"],
            id="presigned, virtual hosts",
        ),
        pytest.param(
            {"S3_BUCKET": "pics", "S3_REGION": "eu-west-1"},
            ["https://pics.s3.amazonaws.com", "https://pics.s3.eu-west-1.amazonaws.com"],
            id="presigned, AWS",
        ),
        pytest.param(
            {"CSP_EXTRA_IMG_SRC": "https://a.example.com, https://b.example.com"},
            ["https://a.example.com", "https://b.example.com"],
            id="named by the operator",
        ),
    ],
)  # fmt: skip
def test_pages_may_show_images_from_where_the_hosted_images_are(tmp_path, env, image_origins):
    # /img/... answers with a redirect to the object when images live in S3: browsers hold the
    # redirect's target to img-src.
    assert _policy(tmp_path, **env)["img-src"] == ["'self'", "data:", *image_origins]


def test_forms_may_go_to_stripe_checkout_and_the_sign_in_providers(tmp_path):
    assert _policy(tmp_path)["form-action"] == ["'self'", "https://checkout.stripe.com"]

    configured = _policy(
        tmp_path,
        STRIPE_CHECKOUT_ORIGIN="https://pay.example.com",
        GITHUB_CLIENT_ID="gh",
        GOOGLE_CLIENT_ID="gg",
    )
    assert configured["form-action"] == [
        "'self'",
        "https://pay.example.com",
        "https://github.com",
        "https://accounts.google.com",
    ]
