"""One settings file, read from environment variables.

DATABASE_URL    default: SQLite in ./data/mesoclinic.sqlite3 (WAL, busy timeout, IMMEDIATE)
SECRET_KEY      required when DEBUG is off, except for the demo and tests
DEBUG           "1" to turn on; off by default
ALLOWED_HOSTS   comma-separated; default 127.0.0.1,localhost
DATA_DIR        where the SQLite file and collected static files live; default ./data
SITE_URL        the public address links in emails point to; default http://127.0.0.1:8000
EMAIL_*         outgoing mail (reminders): see docs/reminders.md
PHOTO_STORAGE   "local" (DATA_DIR/media, the default) or "s3": see docs/photos.md
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DATA_DIR", Path.cwd() / "data"))


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _env_flag("DEBUG")
# The fallback key exists so that a fresh checkout runs the demo and the tests. `mesoclinic serve`
# refuses to start with it (see cli.py), so a production deployment must set SECRET_KEY.
INSECURE_DEFAULT_SECRET_KEY = "mesoclinic-insecure-development-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "mesoclinic.accounts",
    "mesoclinic.protocols",
    "mesoclinic.patients",
    "mesoclinic.formulary",
    "mesoclinic.courses",
    "mesoclinic.scheduling",
    "mesoclinic.reminders",
    "mesoclinic.outcomes",
    "mesoclinic.safety",
    "mesoclinic.ops",
    "mesoclinic.api",
    "mesoclinic.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mesoclinic.api.middleware.ApiProblemMiddleware",
    "mesoclinic.web.middleware.ClinicTimezoneMiddleware",
]

ROOT_URLCONF = "mesoclinic.urls"
WSGI_APPLICATION = "mesoclinic.wsgi.application"

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
                "mesoclinic.web.context.staff",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL")
    if url:
        config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60))
        if config["ENGINE"] == "django.db.backends.sqlite3":
            config["OPTIONS"] = _SQLITE_OPTIONS
        return config
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "mesoclinic.sqlite3",
        "OPTIONS": _SQLITE_OPTIONS,
    }


# WAL lets readers work while one writer writes. IMMEDIATE takes the write lock when a
# transaction begins, so two writers queue on the busy timeout instead of failing mid-way,
# and synchronous=FULL makes a committed transaction survive a crash of the process or machine.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
        "PRAGMA busy_timeout=20000;"
    ),
}

DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Stored times are UTC; each clinic shows and plans in its own time zone (Clinic.timezone).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Clinical photos. The local filesystem under DATA_DIR/media by default, never served as static
# files: the photo views check the clinic and the role, and audit the read, before streaming one.
# PHOTO_STORAGE=s3 stores them in S3-compatible object storage instead (pip install
# 'mesoclinic[s3]'), configured by PHOTO_S3_BUCKET, PHOTO_S3_ENDPOINT_URL, PHOTO_S3_REGION and
# the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. See docs/photos.md.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
PHOTO_STORAGE = os.environ.get("PHOTO_STORAGE", "local")
if PHOTO_STORAGE == "s3":
    _photos: dict[str, object] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("PHOTO_S3_BUCKET", ""),
            "endpoint_url": os.environ.get("PHOTO_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("PHOTO_S3_REGION") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
elif PHOTO_STORAGE == "local":
    _photos = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    }
else:
    raise ValueError(f"PHOTO_STORAGE is 'local' or 's3', not {PHOTO_STORAGE!r}")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "clinical_photos": _photos,
}
# Static files are served by whitenoise from the app directories when they have not been collected.
WHITENOISE_USE_FINDERS = True

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "clinic@localhost")
# The SMTP server, for EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_flag("EMAIL_USE_TLS")
EMAIL_USE_SSL = _env_flag("EMAIL_USE_SSL")
# Seconds; Django's default is to wait for ever, which would stall the reminder worker.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
# The public address of this site, for the links in emails (no trailing slash).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/today/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# How long an API token stays valid, in hours.
API_TOKEN_TTL_HOURS = int(os.environ.get("API_TOKEN_TTL_HOURS", "12"))

# Accounts: limits on guessing passwords and the session's idle timeout (README, Configuration).
# A failure counts against the account (its username) and against the client's address; when
# either reaches its limit within the window, every attempt on it is refused until the lockout
# ends, even with the right password. The same limits apply to the web login, the admin's,
# the API token and the password reset.
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("LOGIN_ADDRESS_FAILURE_LIMIT", "20"))
LOGIN_FAILURE_WINDOW_MINUTES = int(os.environ.get("LOGIN_FAILURE_WINDOW_MINUTES", "15"))
LOGIN_LOCKOUT_MINUTES = int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15"))
# A signed-in browser is signed out after this many minutes without a request: the session's
# age is the timeout, and accounts.middleware.SessionIdleMiddleware saves a signed-in session
# at most once a minute, which moves its expiry on (rather than SESSION_SAVE_EVERY_REQUEST,
# which would make every page view a database write).
SESSION_IDLE_TIMEOUT_MINUTES = int(os.environ.get("SESSION_IDLE_TIMEOUT_MINUTES", "30"))
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_MINUTES * 60
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
    "mesoclinic.accounts.middleware.SessionIdleMiddleware",
)

# Safety surveillance (docs/surveillance.md). SPEC gives none of these numbers: each is the
# product's choice, with its default in mesoclinic/safety/surveil.py DEFAULTS.
SURVEIL_INTERVAL_HOURS = float(os.environ.get("SURVEIL_INTERVAL_HOURS", "6"))
SURVEIL_BASELINE_DAYS = int(os.environ.get("SURVEIL_BASELINE_DAYS", "365"))
SURVEIL_PRIOR_RATE = float(os.environ.get("SURVEIL_PRIOR_RATE", "0.01"))
SURVEIL_PRIOR_SESSIONS = float(os.environ.get("SURVEIL_PRIOR_SESSIONS", "100"))
SURVEIL_CUSUM_RATE_RATIO = float(os.environ.get("SURVEIL_CUSUM_RATE_RATIO", "5"))
SURVEIL_CUSUM_FALSE_ALARM = float(os.environ.get("SURVEIL_CUSUM_FALSE_ALARM", "0.05"))
SURVEIL_CUSUM_HORIZON = int(os.environ.get("SURVEIL_CUSUM_HORIZON", "500"))
SURVEIL_MAXSPRT_ALPHA = float(os.environ.get("SURVEIL_MAXSPRT_ALPHA", "0.05"))
SURVEIL_MAXSPRT_SESSIONS = int(os.environ.get("SURVEIL_MAXSPRT_SESSIONS", "200"))
SURVEIL_MAXSPRT_MIN_EVENTS = int(os.environ.get("SURVEIL_MAXSPRT_MIN_EVENTS", "2"))
SURVEIL_NEW_LOT_DAYS = int(os.environ.get("SURVEIL_NEW_LOT_DAYS", "180"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
