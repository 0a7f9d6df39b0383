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
        "print(json.dumps({'models': {k: v['upstream_id'] for k, v in "
        "settings.SEEDREAM_MODELS.items()}, 'sim': settings.USE_SIMULATOR, "
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
    assert loaded["models"] == {
        "seedream-4-0": "doubao-seedream-4-0-250828",
        "seedream-3-0": "ep-123",
    }
    assert loaded["sim"] is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"UPSTREAM_MODEL_MAP": "seedream-9=x"}, "UPSTREAM_MODEL_MAP"),
        ({"UPSTREAM_BASE_URL": "https://ark.example.com/api/v3"}, "UPSTREAM_API_KEY is empty"),
        ({"DEBUG": "perhaps"}, "DEBUG must be true or false"),
        ({"CREDITS_PER_USD": "a thousand"}, "CREDITS_PER_USD must be a whole number"),
        ({"WEB_MAX_IMAGE_BYTES_IN_FLIGHT": "-1"}, "WEB_MAX_IMAGE_BYTES_IN_FLIGHT must be 0"),
    ],
)
def test_a_misconfiguration_stops_start_up_with_a_reason(tmp_path, env, message):
    result = _settings_in_a_fresh_process(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_one_redis_url_serves_the_cache_the_broker_and_the_rate_limits(tmp_path):
    alone = json.loads(_settings_in_a_fresh_process(tmp_path).stdout)
    assert alone["cache"].endswith("LocMemCache")
    assert alone["broker"] == "filesystem://" and alone["limits"] == ""

    result = _settings_in_a_fresh_process(tmp_path, REDIS_URL="redis://cache.internal:6379/0")
    assert result.returncode == 0, result.stderr
    shared = json.loads(result.stdout)
    assert shared["cache"].endswith("RedisCache")
    assert shared["broker"] == shared["limits"] == "redis://cache.internal:6379/0"
