"""The one settings file. Everything an operator may change comes from the environment.

With no environment at all the product runs: SQLite and files under DATA_DIR (./var), a Celery
broker that needs no server, and the bundled upstream simulator. Every variable read here is
listed in the README's configuration table.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """A string from NAME, or from the file named by NAME_FILE (for secrets mounted as files)."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    # Empty is unset (as for every reader here): "FLAG=" in an env file never turns a default
    # of true into false by accident.
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def _local_secret(path: Path, nbytes: int = 48) -> str:
    """A random secret kept in DATA_DIR, so a local install needs no set-up and survives restarts.

    Production sets the variable instead; the README's checklist says so.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # O_EXCL: two processes starting at once must agree on one secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

# --- Core ---------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
# Error pages and reports hide passwords inside URLs too (DATABASE_URL, REDIS_URL...).
DEFAULT_EXCEPTION_REPORTER_FILTER = "server.error_reports.CredentialsFilter"
SECRET_KEY = env_str("SECRET_KEY") or _local_secret(DATA_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The public address of this site, used in printed examples and absolute image URLs when the
# request itself cannot say (management commands, Celery tasks).
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}").rstrip("/")
# What customers call this installation: the greeting and signature of every email (allauth's
# too: accounts/adapter.py), the admin's header. SITE_DOMAIN is the address emails show, by
# default SITE_URL's host.
SITE_NAME = env_str("SITE_NAME", "Seedream API").strip() or "Seedream API"
SITE_DOMAIN = env_str("SITE_DOMAIN", urlsplit(SITE_URL).netloc)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "django_htmx",  # ships htmx itself (static) and its script tag; no middleware needed
    "drf_spectacular_sidecar",  # Swagger UI's released files, for /docs/api/ (static only)
    "csp",  # django-csp: its checks and template tags (the middleware is server.web_only's)
    *[
        f"allauth.socialaccount.providers.{name}"
        for name in ("github", "google")
        if env_str(f"{name.upper()}_CLIENT_ID")
    ],
    "accounts",
    "keys",
    "billing",
    "webhooks",
    "generation",
    "api",
    "dashboard",
]

# The /v1, /img, /healthz, /readyz and /metrics paths skip the browser middleware (see
# server/web_only.py): under ASGI each classic middleware costs a thread hop per request, and the
# API needs none of them.
MIDDLEWARE = [
    "server.middleware.request_id_middleware",
    "server.middleware.metrics_middleware",
    "server.web_only.SecurityMiddleware",
    "server.web_only.WhiteNoiseMiddleware",
    "server.web_only.SessionMiddleware",
    "server.web_only.CommonMiddleware",
    "server.web_only.CsrfViewMiddleware",
    "server.web_only.AuthenticationMiddleware",
    "server.web_only.MessageMiddleware",
    "server.web_only.XFrameOptionsMiddleware",
    "server.web_only.CSPMiddleware",
    # Natively async and cheap (it only sets a context), so it needs no wrapper.
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # card_payments, signup_credits, support_email: how a customer gets credits.
                "dashboard.context_processors.credits_offer",
                # current_account, current_role, account_memberships: the account switcher.
                "accounts.context_processors.current_account",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
_db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # IMMEDIATE: a write transaction takes the lock when it begins, so two processes never
        # deadlock upgrading read locks; WAL lets readers run beside the one writer.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db["TEST"] = {"NAME": env_str("SQLITE_TEST_NAME", str(DATA_DIR / "test-db.sqlite3"))}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Django turns psycopg's prepared statements off (for transaction-mode poolers such as
    # PgBouncer < 1.21). The API's hot path prepares its few statements on purpose
    # (generation/hotpath.py); Django's own queries are never prepared either way (they carry their
    # values in the SQL). Behind an old transaction-mode pooler set DB_PREPARED_STATEMENTS=false.
    # (Added to the options DATABASE_URL's query string gives, such as sslmode, never instead.)
    _db["OPTIONS"] = {
        **_db.get("OPTIONS", {}),
        "prepare_threshold": 5 if env_bool("DB_PREPARED_STATEMENTS", True) else None,
    }
    # A request holds a connection only while it runs SQL (server/steps.py); the pool lends it.
    if env_bool("DB_POOL", True):
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"] |= {
            "pool": {
                "min_size": env_int("DB_POOL_MIN_SIZE", 2),
                "max_size": env_int("DB_POOL_MAX_SIZE", 20),
                "timeout": env_int("DB_POOL_TIMEOUT", 30),
            }
        }
    else:
        _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60)
    # A pooled or kept connection is checked before it is used (a round trip of an empty
    # query): after a database restart, a dead one is replaced instead of failing a request or
    # a settlement. server/asyncdb.py's pool follows this too.
    _db["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", True)
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:overview"

# --- Sign-up and sign-in (django-allauth) --------------------------------------------------------

ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
# Emails name this installation (SITE_NAME, SITE_DOMAIN), never the host a request came in on.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
# allauth's own rate limits (login failures, sign-up, password reset) stay at their defaults.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
SOCIALACCOUNT_PROVIDERS: dict[str, Any] = {
    name: {
        "APPS": [
            {
                "client_id": env_str(f"{name.upper()}_CLIENT_ID"),
                "secret": env_str(f"{name.upper()}_CLIENT_SECRET"),
            }
        ]
    }
    for name in ("github", "google")
    if env_str(f"{name.upper()}_CLIENT_ID")
}
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True

# --- Email: printed to the console unless an SMTP server is configured ---------------------------

EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <no-reply@localhost>")
# Where customers write for credits (without card payments), a custom rate limit or a refund:
# every page that tells a customer to ask the operator shows it. make run says when it is unset.
SUPPORT_EMAIL = env_str("SUPPORT_EMAIL")

# --- Security -----------------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Behind TLS (every production install) cookies must never travel in clear.
SECURE_COOKIES = env_bool("SECURE_COOKIES", SITE_URL.startswith("https://"))
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
# A production served over https (SITE_URL, DEBUG off) gets HTTPS-only defaults: browser pages
# redirected to https, a year of HSTS, and X-Forwarded-Proto trusted from the TLS-terminating
# proxy in front (without that, the redirect would loop: the proxy speaks http to us). make run
# and the tests serve http and keep them off. HSTS for subdomains and the browsers' preload list
# cannot be taken back quickly, so they are only ever asked for.
_HTTPS_PRODUCTION = SITE_URL.startswith("https://") and not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS_PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("TRUST_X_FORWARDED_PROTO", _HTTPS_PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Django's "middleware missing" warnings are false here: its security, CSRF and X-Frame-Options
# middleware run under other names (server/web_only.py). server/checks.py runs Django's checks
# as if they had their own names, and reports these three itself (server.W001-W003) when true.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]
# The Content-Security-Policy (CONTENT_SECURITY_POLICY) is at the end of this file: it names the
# places images are served from.

# --- Static and media ---------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Internationalisation -----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# Our wording of third-party strings: django-allauth's Title Case headings and buttons in the
# sentence case of the rest of the site (locale/en/LC_MESSAGES/django.po).
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

# --- Logging ------------------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.request": {"level": "ERROR"}, "aiohttp": {"level": "WARNING"}},
}

# --- Celery -------------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# One cache for every process (allauth's sign-in and reset rate limits live in it) when Redis is
# configured; otherwise each process keeps its own in memory.
# While Redis is unreachable the cache answers from the process's memory instead
# (server/cache.py), and the rate limits count in the database (generation/ratelimits.py).
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "server.cache.RedisCacheWithFallback",
            "LOCATION": REDIS_URL,
            # A Redis that hangs costs a call this long, then its fallback is used.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# After Redis fails to answer, a process uses its fallback for this long before trying again,
# and logs that Redis is still down at most once per REDIS_OUTAGE_LOG_SECONDS.
REDIS_RETRY_SECONDS = env_int("REDIS_RETRY_SECONDS", 5)
REDIS_OUTAGE_LOG_SECONDS = env_int("REDIS_OUTAGE_LOG_SECONDS", 60)
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Zero-server default: workers on the same host share a folder. It never redelivers the task
    # of a killed worker; the Generation row is the truth and the reconciler finishes such work.
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange metadata; kombu's default is a "control" folder in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# Installations (or test runs) that share one Redis keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    "reconcile-stuck-generations": {
        "task": "generation.tasks.reconcile_stuck_generations",
        "schedule": env_int("RECONCILE_EVERY_SECONDS", 60),
    },
    "purge-expired-images": {"task": "generation.tasks.purge_expired_images", "schedule": 3600.0},
    "sweep-orphan-files": {
        "task": "generation.tasks.sweep_orphan_files",
        "schedule": env_int("ORPHAN_SWEEP_EVERY_SECONDS", 6 * 3600),
    },
    "prune-rate-limit-counters": {
        "task": "generation.tasks.prune_rate_limit_counters",
        "schedule": 300.0,
    },
    # Stripe receipts that could not be fetched when their purchases were credited.
    "fill-missing-receipts": {"task": "billing.tasks.fill_missing_receipts", "schedule": 600.0},
    # Automatic top-ups a task missed (a lost worker or message, a crossing the broker missed).
    "sweep-auto-top-ups": {"task": "billing.tasks.sweep_auto_top_ups", "schedule": 300.0},
    # Webhook deliveries that are due (long retries, lost tasks), and old ones pruned.
    "sweep-webhook-messages": {
        "task": "webhooks.tasks.sweep",
        "schedule": env_int("WEBHOOK_SWEEP_EVERY_SECONDS", 60),
    },
}

# --- API keys -----------------------------------------------------------------------------------

# "id:secret,id:secret": the first pepper hashes new keys; the others still verify older keys,
# which are re-hashed with the first on their next use. See README "Rotating the key pepper".
API_KEY_PEPPERS = env_str("API_KEY_PEPPERS") or f"local:{_local_secret(DATA_DIR / 'key_pepper')}"
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60

# --- Webhooks (webhooks/) -----------------------------------------------------------------------

# Endpoints' signing secrets are kept encrypted (Fernet) under these keys: comma-separated
# secrets of 32+ characters each; the first encrypts, every one decrypts. To rotate, put a new
# key first, run `manage.py reencrypt_webhook_secrets`, then drop the old one (README,
# "Webhooks"). Without the variable a local key is kept in DATA_DIR, like the key pepper.
WEBHOOK_SECRET_KEYS = env_str("WEBHOOK_SECRET_KEYS") or _local_secret(
    DATA_DIR / "webhook_secret_key"
)
# Each delivery (connect, send, the answer's status line) must be done within this many seconds.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 15)
if WEBHOOK_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT_SECONDS must be 1 or more")
# Seconds between a failed attempt and the next (Standard Webhooks' schedule: 5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 10 h): eight attempts over about 27.5 hours.
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    int(_step)
    for _step in env_list("WEBHOOK_RETRY_SCHEDULE_SECONDS", "5,300,1800,7200,18000,36000,36000")
]
if any(_step <= 0 for _step in WEBHOOK_RETRY_SCHEDULE_SECONDS):
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE_SECONDS must be positive whole numbers")
# An endpoint whose attempts have all failed for this long (since the first failure after its
# last success) is disabled at its next failure, and its owner is emailed.
WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = env_int("WEBHOOK_DISABLE_AFTER_FAILING_SECONDS", 86400)
# Deliveries may go to loopback and private addresses, and over http: make run's default (the
# site itself on loopback) or DEBUG, so a developer can receive on their own machine. A public
# site refuses them (https only, public addresses only, checked at each connection).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool(
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
    DEBUG or urlsplit(SITE_URL).hostname in ("127.0.0.1", "localhost", "::1"),
)
# Endpoints one account may have.
WEBHOOK_MAX_ENDPOINTS = env_int("WEBHOOK_MAX_ENDPOINTS", 10)
# Events (with their messages and attempts) older than this are deleted by the sweep.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30)

# --- Credits ------------------------------------------------------------------------------------

# One credit is worth 1/CREDITS_PER_USD dollars: with 1000, a credit is a tenth of a cent.
CREDITS_PER_USD = env_int("CREDITS_PER_USD", 1000)
DEMO_CREDITS = env_int("DEMO_CREDITS", 2000)
# Trial credits for every new account, granted once, when its email address is verified
# (billing.services.grant_signup_credits), as a ledger line of its own. 0: none.
SIGNUP_CREDITS = env_int("SIGNUP_CREDITS", 0)
if SIGNUP_CREDITS < 0:
    raise ImproperlyConfigured("SIGNUP_CREDITS must not be negative")
# How long a process may quote from the price table it read last (prices edited in the admin
# apply everywhere within this many seconds).
PRICE_CACHE_SECONDS = env_int("PRICE_CACHE_SECONDS", 10)

# --- Card payments (Stripe) ---------------------------------------------------------------------

# Both keys are needed for card payments: the secret key opens Checkout Sessions and the webhook
# secret verifies the events that credit them. Without either, the billing page says card payments
# are not set up (operators still grant credits and issue promotion codes). Hosted Checkout is
# reached by a server-side redirect, so no publishable key is needed.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
# Stripe's own API unless pointed at stripe-mock or the tests' fake.
# Promotion codes tried per hour, per account and per address (billing/views.py): enough for
# typing mistakes, too few to guess codes.
PROMO_CODE_ATTEMPTS_PER_HOUR = env_int("PROMO_CODE_ATTEMPTS_PER_HOUR", 10)
# Stripe Checkout pages one account may open per hour (each is a session at Stripe).
CHECKOUT_SESSIONS_PER_HOUR = env_int("CHECKOUT_SESSIONS_PER_HOUR", 20)
# Requests with a missing or wrong API key per minute from one address before the API answers
# 429 instead of 401 (api/auth.py).
API_KEY_FAILURES_PER_MINUTE = env_int("API_KEY_FAILURES_PER_MINUTE", 20)
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
# Where Stripe's hosted Checkout pages live (another origin with a custom Checkout domain): the
# buy form's POST is answered with a redirect there, so the pages' form-action allows it.
STRIPE_CHECKOUT_ORIGIN = env_str("STRIPE_CHECKOUT_ORIGIN", "https://checkout.stripe.com")
STRIPE_CURRENCY = env_str("STRIPE_CURRENCY", "usd").lower()
# Amounts in the currency's smallest unit (cents): the preset packs, and the bounds of a custom
# amount. Credits for an amount: amount_cents * CREDITS_PER_USD // 100.
STRIPE_MIN_CENTS = env_int("STRIPE_MIN_CENTS", 500)
STRIPE_MAX_CENTS = env_int("STRIPE_MAX_CENTS", 50_000)
if not 0 < STRIPE_MIN_CENTS <= STRIPE_MAX_CENTS:
    raise ImproperlyConfigured("STRIPE_MIN_CENTS must be above 0 and at most STRIPE_MAX_CENTS")
STRIPE_PACKS_CENTS: list[int] = []
for _pack in env_list("STRIPE_PACKS_CENTS", "500,2000,5000,10000"):
    if not _pack.isdigit() or not STRIPE_MIN_CENTS <= int(_pack) <= STRIPE_MAX_CENTS:
        raise ImproperlyConfigured(
            f"STRIPE_PACKS_CENTS: {_pack!r} is not a whole number of cents between "
            f"STRIPE_MIN_CENTS ({STRIPE_MIN_CENTS}) and STRIPE_MAX_CENTS ({STRIPE_MAX_CENTS})"
        )
    STRIPE_PACKS_CENTS.append(int(_pack))

# --- Generation API -----------------------------------------------------------------------------

PROMPT_MAX_CHARS = env_int("PROMPT_MAX_CHARS", 4000)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024)
# The bodies that may carry reference images (POST /v1/images/edits, and /generations and /quote
# with Seedream's ``image``): the files, or their base64 in JSON (a third larger). Each image is
# also held to its model's own limits (10 MB on most, 30 MB on 5.0 Pro).
API_MAX_IMAGE_BODY_BYTES = env_int("API_MAX_IMAGE_BODY_BYTES", 50 * 1024 * 1024)
if API_MAX_IMAGE_BODY_BYTES < API_MAX_BODY_BYTES:
    raise ImproperlyConfigured("API_MAX_IMAGE_BODY_BYTES must be at least API_MAX_BODY_BYTES")
# The pages' forms (Django's own limit for a form's fields; files are spooled to disk).
WEB_MAX_BODY_BYTES = env_int("WEB_MAX_BODY_BYTES", 2_621_440)
# Django refuses a body above this when it is read whole: never below what a path allows.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_IMAGE_BODY_BYTES, WEB_MAX_BODY_BYTES)
# A request body that has not arrived by then is answered 408 (server/body_guard.py); a larger
# one than its path allows (API_MAX_IMAGE_BODY_BYTES on the image paths, API_MAX_BODY_BYTES on
# the rest of /v1/, WEB_MAX_BODY_BYTES elsewhere) is answered 413 before it is read.
BODY_READ_TIMEOUT_SECONDS = env_int("BODY_READ_TIMEOUT_SECONDS", 30)
# The same on the paths that take reference images (those of API_MAX_IMAGE_BODY_BYTES): 50 MiB
# over a 2 Mbit/s uplink (a phone on a weak signal) takes 210 s, so 240 s lets it arrive. A
# connection held that long is one of WEB_MAX_CONNECTIONS; a front proxy that buffers bodies
# spares the process it entirely (README, "Deployment").
IMAGE_BODY_READ_TIMEOUT_SECONDS = env_int("IMAGE_BODY_READ_TIMEOUT_SECONDS", 240)
if IMAGE_BODY_READ_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("IMAGE_BODY_READ_TIMEOUT_SECONDS must be 1 or more")
# A request's line and headers must arrive within this, counted from the connection's opening
# (or, on a kept-alive connection, from the request's first byte): server/http_protocol.py.
HEADER_READ_TIMEOUT_SECONDS = env_int("HEADER_READ_TIMEOUT_SECONDS", 10)
# The image bytes one web process holds at once (generation/memory.py): past it, new generations
# are answered 503 with Retry-After before anything is charged. 0: no bound.
WEB_MAX_IMAGE_BYTES_IN_FLIGHT = env_int("WEB_MAX_IMAGE_BYTES_IN_FLIGHT", 256 * 1024 * 1024)
if WEB_MAX_IMAGE_BYTES_IN_FLIGHT < 0:
    raise ImproperlyConfigured("WEB_MAX_IMAGE_BYTES_IN_FLIGHT must be 0 (no bound) or more")
# Reference images sent as URLs are fetched by us (generation/input_fetch.py): public addresses
# only, each fetch (connect, redirects and body) bounded by this many seconds. The hosts listed
# (names or IPs, e.g. an operator's own storage on a private network) may be private and may be
# fetched over http too; no one else's.
INPUT_FETCH_TIMEOUT_SECONDS = env_int("INPUT_FETCH_TIMEOUT_SECONDS", 10)
if INPUT_FETCH_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("INPUT_FETCH_TIMEOUT_SECONDS must be 1 or more")
INPUT_FETCH_PRIVATE_HOSTS = env_list("INPUT_FETCH_PRIVATE_HOSTS")
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
# How long a repeated Idempotency-Key waits for the first request before answering 409.
IDEMPOTENCY_WAIT_SECONDS = env_int("IDEMPOTENCY_WAIT_SECONDS", 120)
# A generation still unsettled this long after it began is reconciled (its reservation released).
GENERATION_DEADLINE_SECONDS = env_int("GENERATION_DEADLINE_SECONDS", 900)
# Absolute URL prefix for hosted images (a CDN). Empty: the request's own host.
IMAGE_BASE_URL = env_str("IMAGE_BASE_URL").rstrip("/")
# Images (and their thumbnails) older than this many days are deleted by a daily job; 0 keeps
# them forever. The ledger and the usage log keep their lines either way.
IMAGE_RETENTION_DAYS = env_int("IMAGE_RETENTION_DAYS", 0)
# A stored file that no image row names (a store that failed half way, a settlement that never
# committed) is removed by the orphan sweep once it is this old: older than any generation can
# take between storing its images and settling.
ORPHAN_FILE_GRACE_SECONDS = env_int("ORPHAN_FILE_GRACE_SECONDS", GENERATION_DEADLINE_SECONDS + 3600)
# How long browsers, proxies and CDNs may keep an image (and its thumbnail): a deleted image's
# link may still answer from a cache for up to this long.
IMAGE_CACHE_SECONDS = env_int("IMAGE_CACHE_SECONDS", 86400)
THUMBNAIL_MAX_PIXELS = env_int("THUMBNAIL_MAX_PIXELS", 384)

# --- Playground (browser generations, run by Celery workers) ------------------------------------

# A queued generation whose task has not started after this long is sent again (a lost message);
# a running one whose worker has been silent past the upstream time budget plus this is presumed
# dead and queued again, up to GENERATION_MAX_ATTEMPTS runs; after that it fails and is refunded.
GENERATION_REDISPATCH_SECONDS = env_int("GENERATION_REDISPATCH_SECONDS", 60)
# A web process that is stopped waits this long (after uvicorn's own connection drain) for
# generations still running whose client hung up, then fails and refunds the rest at once.
SHUTDOWN_GRACE_SECONDS = env_int("SHUTDOWN_GRACE_SECONDS", 20)
GENERATION_MAX_ATTEMPTS = env_int("GENERATION_MAX_ATTEMPTS", 3)
# Transient upstream faults (busy, timeout, 5xx) are retried by the task with this backoff base.
GENERATION_RETRY_BACKOFF_SECONDS = env_int("GENERATION_RETRY_BACKOFF_SECONDS", 5)

# --- Upstream (Seedream on BytePlus ModelArk, or Volcengine Ark) -------------------------------

SIMULATOR_PORT = env_int("SIMULATOR_PORT", 8799)
UPSTREAM_API_KEY = env_str("UPSTREAM_API_KEY")
# With no upstream key the product talks to the bundled simulator (make run starts it).
USE_SIMULATOR = not UPSTREAM_API_KEY
SIMULATOR_API_KEY = "sim-local-key"
UPSTREAM_BASE_URL = env_str(
    "UPSTREAM_BASE_URL",
    f"http://127.0.0.1:{SIMULATOR_PORT}/api/v3"
    if USE_SIMULATOR
    else "https://ark.ap-southeast.bytepluses.com/api/v3",
).rstrip("/")
if USE_SIMULATOR:
    # A real upstream address with no key would send the simulator's key to it: refuse to start
    # rather than answer every customer with 503s.
    if urlsplit(UPSTREAM_BASE_URL).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ImproperlyConfigured(
            f"UPSTREAM_BASE_URL is {UPSTREAM_BASE_URL} but UPSTREAM_API_KEY is empty"
        )
    UPSTREAM_API_KEY = SIMULATOR_API_KEY
UPSTREAM_TIMEOUT_SECONDS = env_int("UPSTREAM_TIMEOUT_SECONDS", 180)
# The whole of a generation (every attempt and the download), kept well under the 600 s after
# which the OpenAI SDKs time out and retry.
GENERATION_TIMEOUT_SECONDS = env_int("GENERATION_TIMEOUT_SECONDS", 300)
UPSTREAM_CONNECT_TIMEOUT_SECONDS = env_int("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 10)
UPSTREAM_MAX_RETRIES = env_int("UPSTREAM_MAX_RETRIES", 2)
UPSTREAM_RETRY_BACKOFF_MS = env_int("UPSTREAM_RETRY_BACKOFF_MS", 500)
# On PostgreSQL a generation's reservation and its settlement are one SQL statement each
# (generation/hotpath.py); false takes the ORM's transactions instead, as on SQLite. Same rows
# either way.
GENERATION_SINGLE_STATEMENT_SQL = env_bool("GENERATION_SINGLE_STATEMENT_SQL", True)
# A served web process runs those statements (and the key lookup) on its event loop, through a
# pool of its own of at most this many connections (server/asyncdb.py); each statement holds one
# for well under a millisecond. Added to DB_POOL_MAX_SIZE when sizing PostgreSQL's
# max_connections.
DB_ASYNC_POOL_MAX_SIZE = env_int("DB_ASYNC_POOL_MAX_SIZE", 8)
UPSTREAM_MAX_CONNECTIONS = env_int("UPSTREAM_MAX_CONNECTIONS", 512)
# How the upstream hands each image over. "url" (the default): a link to its object storage
# (valid 24 h) that we download, from the hosts below only. "b64_json": inside its answer, one
# round trip per image and no fetch from an address the upstream names, but a third more bytes
# to carry and base64 to decode: measured with bench/api_bench.py, it saves 8 % of the web
# process's CPU for a small (45 KB) image and costs 40 % more for a 2048x2048 photograph.
UPSTREAM_RESPONSE_FORMAT = env_str("UPSTREAM_RESPONSE_FORMAT", "url")
if UPSTREAM_RESPONSE_FORMAT not in ("b64_json", "url"):
    raise ImproperlyConfigured("UPSTREAM_RESPONSE_FORMAT must be b64_json or url")
# Images are fetched only from these hosts ("*." matches any subdomain), over https unless the
# host is the configured upstream's own (the simulator on loopback).
UPSTREAM_IMAGE_HOSTS = [
    *env_list(
        "UPSTREAM_IMAGE_HOSTS", "*.bytepluses.com,*.byteplusapi.com,*.volces.com,*.volccdn.com"
    ),
    urlsplit(UPSTREAM_BASE_URL).hostname or "",
]
UPSTREAM_IMAGE_MAX_BYTES = env_int("UPSTREAM_IMAGE_MAX_BYTES", 32 * 1024 * 1024)
UPSTREAM_IMAGE_TIMEOUT_SECONDS = env_int("UPSTREAM_IMAGE_TIMEOUT_SECONDS", 60)

# The model catalog (generation/catalog.toml; what each entry says is described there): our public
# ids, aliases, upstream ids per channel, sizes, reference limits, upstream fields and lifecycle.
# Operators edit a copy and point SEEDREAM_CATALOG_FILE at it (TOML, or JSON of the same shape),
# and may change a model's upstream id on this installation's channel with UPSTREAM_MODEL_MAP
# ("seedream-4-0=doubao-seedream-4-0-250828,..."). A model's lifecycle, upstream ids and default
# size can also be changed in the admin ("Catalog overrides"), without a restart: every process
# reads those at most every CATALOG_CACHE_SECONDS (the one that saved, at once).
CATALOG_CACHE_SECONDS = env_int("CATALOG_CACHE_SECONDS", 10)
SEEDREAM_CATALOG_FILE = Path(
    env_str("SEEDREAM_CATALOG_FILE", str(BASE_DIR / "generation" / "catalog.toml"))
)
# Whose upstream ids to send: "byteplus" (ModelArk, international) or "volcengine" (China); by
# default the one UPSTREAM_BASE_URL is on.
UPSTREAM_CHANNEL = env_str(
    "UPSTREAM_CHANNEL",
    "volcengine"
    if (urlsplit(UPSTREAM_BASE_URL).hostname or "").endswith(".volces.com")
    else "byteplus",
)
if UPSTREAM_CHANNEL not in ("byteplus", "volcengine"):
    raise ImproperlyConfigured("UPSTREAM_CHANNEL must be byteplus or volcengine")
try:
    _catalog_text = SEEDREAM_CATALOG_FILE.read_text()
    _catalog_data = (
        json.loads(_catalog_text)
        if SEEDREAM_CATALOG_FILE.suffix == ".json"
        else tomllib.loads(_catalog_text)
    )
except (OSError, ValueError) as _error:
    raise ImproperlyConfigured(f"SEEDREAM_CATALOG_FILE: {_error}") from None
SEEDREAM_MODELS: dict[str, dict[str, Any]] = _catalog_data["models"]
for _pair in env_list("UPSTREAM_MODEL_MAP"):
    _public, _, _upstream = _pair.partition("=")
    if _public.strip() not in SEEDREAM_MODELS or not _upstream.strip():
        raise ImproperlyConfigured(f"UPSTREAM_MODEL_MAP: unknown model or empty id in {_pair!r}")
    SEEDREAM_MODELS[_public.strip()].setdefault("upstream", {})[UPSTREAM_CHANNEL] = [
        _upstream.strip()
    ]

# --- Provenance (generation/provenance.py) ------------------------------------------------------

# Every hosted image says in its XMP that an AI model made it, with this IPTC digital source type
# (".../compositeWithTrainedAlgorithmicMedia" would suit edits of a customer's photograph).
PROVENANCE_DIGITAL_SOURCE_TYPE = env_str(
    "PROVENANCE_DIGITAL_SOURCE_TYPE",
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
)
if not PROVENANCE_DIGITAL_SOURCE_TYPE.startswith("http://cv.iptc.org/newscodes/digitalsourcetype/"):
    raise ImproperlyConfigured(
        "PROVENANCE_DIGITAL_SOURCE_TYPE must be an IPTC digital source type "
        "(http://cv.iptc.org/newscodes/digitalsourcetype/...)"
    )
# The software agent (our product) the signed C2PA manifest names.
PROVENANCE_SOFTWARE_AGENT = env_str("PROVENANCE_SOFTWARE_AGENT", "Seedream API")
# The operator's C2PA signer: a PEM private key and its PEM certificate chain (the signing
# certificate first, then its intermediates). Secrets: mount them as C2PA_SIGNING_KEY_FILE and
# C2PA_CERTIFICATE_FILE. Without them images carry the XMP only, and check --deploy warns.
C2PA_SIGNING_KEY = env_str("C2PA_SIGNING_KEY")
C2PA_CERTIFICATE = env_str("C2PA_CERTIFICATE")
if bool(C2PA_SIGNING_KEY) != bool(C2PA_CERTIFICATE):
    raise ImproperlyConfigured(
        "C2PA_SIGNING_KEY and C2PA_CERTIFICATE are set together or not at all"
    )
# make run turns this on: without an operator's signer, sign with a development key and
# certificate made in DATA_DIR/c2pa-dev (validators read the manifest and call it untrusted).
C2PA_DEVELOPMENT_SIGNER = env_bool("C2PA_DEVELOPMENT_SIGNER", False)

# --- Rate limits (generation/ratelimits.py) -------------------------------------------------------

# Tiers follow the credits an account has added in total (bought, granted or redeemed, less
# refunds and disputes) and, where a tier says so, its balance; the highest tier whose
# thresholds the account meets applies. Limits are per RATE_LIMIT_WINDOW_SECONDS (a minute).
# Operators replace the table with JSON in RATE_LIMIT_TIERS (or a file: RATE_LIMIT_TIERS_FILE).
RATE_LIMIT_TIERS: list[dict[str, Any]] = [
    {"id": "free", "name": "Free", "min_lifetime_credits": 0, "min_balance_credits": 0,
     "requests_per_minute": 60, "images_per_minute": 20, "concurrent_generations": 3},
    {"id": "tier-1", "name": "Tier 1", "min_lifetime_credits": 5_000, "min_balance_credits": 0,
     "requests_per_minute": 300, "images_per_minute": 100, "concurrent_generations": 10},
    {"id": "tier-2", "name": "Tier 2", "min_lifetime_credits": 50_000, "min_balance_credits": 0,
     "requests_per_minute": 1200, "images_per_minute": 500, "concurrent_generations": 40},
    {"id": "tier-3", "name": "Tier 3", "min_lifetime_credits": 250_000,
     "min_balance_credits": 25_000, "requests_per_minute": 3000, "images_per_minute": 1500,
     "concurrent_generations": 100},
]  # fmt: skip
if env_str("RATE_LIMIT_TIERS"):
    RATE_LIMIT_TIERS = json.loads(env_str("RATE_LIMIT_TIERS"))
RATE_LIMIT_WINDOW_SECONDS = env_int("RATE_LIMIT_WINDOW_SECONDS", 60)
# Counters live in Redis when one is configured (correct across hosts); otherwise in the
# database (correct across the processes that share it).
RATE_LIMIT_REDIS_URL = env_str("RATE_LIMIT_REDIS_URL", REDIS_URL)
# A concurrency slot is held until its generation ends; if its process dies, until this lease
# runs out (a live generation never outlasts GENERATION_TIMEOUT_SECONDS).
RATE_LIMIT_SLOT_LEASE_SECONDS = env_int(
    "RATE_LIMIT_SLOT_LEASE_SECONDS", GENERATION_TIMEOUT_SECONDS + 60
)
# Retry-After for a request refused by the concurrency limit (slots free as generations end).
RATE_LIMIT_CONCURRENCY_RETRY_SECONDS = env_int("RATE_LIMIT_CONCURRENCY_RETRY_SECONDS", 2)

# --- Observability ------------------------------------------------------------------------------

# /metrics (Prometheus) answers only "Authorization: Bearer <METRICS_TOKEN>"; while it is empty
# the endpoint does not exist (404). With several processes per host (uvicorn workers, Celery's
# pool) set PROMETHEUS_MULTIPROC_DIR too: see server/metrics.py and the README.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Each /readyz check (database, Redis, storage) gives up after this long.
READYZ_TIMEOUT_MS = env_int("READYZ_TIMEOUT_MS", 1000)
# "plain" lines for a terminal (make run), or "json": one JSON object per line for a log
# collector. Either way each record carries the id of the request being served (or of the
# request that queued the Celery task being run); json prints it.
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING["filters"] = {"request_id": {"()": "server.middleware.RequestIdFilter"}}
LOGGING["formatters"]["json"] = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",
}
LOGGING["handlers"]["console"]["filters"] = ["request_id"]
if LOG_FORMAT == "json":
    LOGGING["handlers"]["console"]["formatter"] = "json"
    LOGGING["loggers"].update(
        {
            # uvicorn configures its own plain handlers before Django starts: its start-up and
            # error lines go through ours instead. Its access log is off in json mode (a plain
            # handler would break the one-object-per-line promise); /metrics counts requests.
            "uvicorn": {"handlers": ["console"], "propagate": False},
            "uvicorn.access": {"handlers": [], "propagate": False},
        }
    )

# --- Storage (S3-compatible) --------------------------------------------------------------------

# With S3_BUCKET set, images and thumbnails live in that bucket (AWS S3 or any S3-compatible
# service: Ceph, Swift's s3api, MinIO, R2...) through django-storages (generation/storage.py)
# instead of under MEDIA_ROOT, and no web process serves their bytes: /img/... answers 302 to the
# object. How a browser reaches an object: - S3_PUBLIC_BASE_URL set (a public-read bucket, or a CDN
# in front of it): API responses carry the permanent URL base + "/" + object name, and /img/...
# redirects there (cacheable for good). - empty (a private bucket): API responses carry this site's
# /img/... URL, which never expires and redirects to a fresh presigned URL valid
# S3_URL_EXPIRY_SECONDS (a redirect is cached for at most half of that). Gallery downloads always
# use a presigned URL: S3 applies the download file name only then. Without S3_BUCKET nothing here
# applies.
S3_BUCKET = env_str("S3_BUCKET")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")  # empty: AWS S3 itself
S3_PUBLIC_BASE_URL = env_str("S3_PUBLIC_BASE_URL").rstrip("/")
S3_URL_EXPIRY_SECONDS = env_int("S3_URL_EXPIRY_SECONDS", 3600)
# "path" (http://host/bucket/key) suits self-hosted endpoints; AWS prefers "virtual".
S3_ADDRESSING_STYLE = env_str("S3_ADDRESSING_STYLE", "path" if S3_ENDPOINT_URL else "virtual")
if S3_BUCKET:
    if S3_ADDRESSING_STYLE not in ("path", "virtual", "auto"):
        raise ImproperlyConfigured("S3_ADDRESSING_STYLE must be path, virtual or auto")
    # SigV4 presigned URLs live at most 7 days.
    if not 1 <= S3_URL_EXPIRY_SECONDS <= 7 * 24 * 3600:
        raise ImproperlyConfigured("S3_URL_EXPIRY_SECONDS must be between 1 and 604800")
    if S3_PUBLIC_BASE_URL and urlsplit(S3_PUBLIC_BASE_URL).scheme not in ("http", "https"):
        raise ImproperlyConfigured("S3_PUBLIC_BASE_URL must be an http(s) URL")
    STORAGES["default"] = {
        "BACKEND": "generation.storage.ObjectStorage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": env_str("S3_REGION") or None,
            # Both empty: boto3's own chain (AWS_* variables, an instance or pod role).
            "access_key": env_str("S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("S3_SECRET_ACCESS_KEY") or None,
            "addressing_style": S3_ADDRESSING_STYLE,
            "signature_version": "s3v4",
            "querystring_expire": S3_URL_EXPIRY_SECONDS,
            "public_base_url": S3_PUBLIC_BASE_URL,
        },
    }

# --- Content-Security-Policy (django-csp) -------------------------------------------------------

# Every page (server.web_only.CSPMiddleware) loads scripts, styles and everything else from this
# site only: no inline script, style or event handler runs. Images may also come from where the
# hosted images live (a CDN in IMAGE_BASE_URL, an S3 bucket: /img/... redirects there) and from
# data: URLs (the two-factor set-up's QR code). Forms may post here only, and to where a POST of
# ours redirects: Stripe's hosted Checkout and the sign-in providers (browsers hold a form's
# redirect to form-action too).


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _s3_image_origins() -> list[str]:
    """Where browsers fetch S3 objects: the public base URL, else the presigned URLs' host."""
    if S3_PUBLIC_BASE_URL:
        return [_origin(S3_PUBLIC_BASE_URL)]
    path_style = S3_ADDRESSING_STYLE in ("path", "auto")
    virtual = S3_ADDRESSING_STYLE in ("virtual", "auto")
    if S3_ENDPOINT_URL:
        endpoint = urlsplit(S3_ENDPOINT_URL)
        hosts = [endpoint.netloc] if path_style else []
        hosts += [f"{S3_BUCKET}.{endpoint.netloc}"] if virtual else []
        return [f"{endpoint.scheme}://{host}" for host in hosts]
    region = env_str("S3_REGION")
    aws = ["s3.amazonaws.com", *([f"s3.{region}.amazonaws.com"] if region else [])]
    hosts = aws if path_style else []
    hosts += [f"{S3_BUCKET}.{host}" for host in aws] if virtual else []
    return [f"https://{host}" for host in hosts]


_SIGN_IN_PROVIDER_ORIGINS = {
    "github": "https://github.com",
    "google": "https://accounts.google.com",
}
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": list(
            dict.fromkeys(
                [
                    "'self'",
                    "data:",
                    *([_origin(IMAGE_BASE_URL)] if IMAGE_BASE_URL else []),
                    *(_s3_image_origins() if S3_BUCKET else []),
                    *env_list("CSP_EXTRA_IMG_SRC"),
                ]
            )
        ),
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": [
            "'self'",
            _origin(STRIPE_CHECKOUT_ORIGIN),
            *[
                origin
                for name, origin in _SIGN_IN_PROVIDER_ORIGINS.items()
                if env_str(f"{name.upper()}_CLIENT_ID")
            ],
        ],
    }
}
