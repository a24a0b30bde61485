"""One settings file, read from environment variables.

DATABASE_URL    default: SQLite in ./data/mesoclinic.sqlite3 (WAL, busy timeout, IMMEDIATE)
SECRET_KEY      required when DEBUG is off, except for the demo and tests
DEBUG           "1" to turn on; off by default
ALLOWED_HOSTS   comma-separated; default 127.0.0.1,localhost
DATA_DIR        where the SQLite file and collected static files live; default ./data
SITE_URL        the public address links in emails point to; default http://127.0.0.1:8000
SMS_PROVIDER_URL, SMS_ACCOUNT_SID, SMS_AUTH_TOKEN, SMS_FROM  text messages (docs/notifications.md)
EMAIL_URL       outgoing mail as one address (smtp://, smtp+tls://, smtps://); or EMAIL_*
PHOTO_STORAGE   "local" (DATA_DIR/media, the default) or "s3": see docs/photos.md
PHOTO_MAX_*     what one photo may cost (bytes, pixels, side, decodes at once): docs/photos.md
MAX_REQUEST_BYTES  the largest request body `mesoclinic serve` reads; default 62 MB
API_MAX_BODY_BYTES  the largest request body outside photo uploads; default 1 MiB
IMPORT_MAX_BYTES    the largest CSV file the import pages take; default 4 MiB (docs/import.md)
BEHIND_TLS_PROXY, SECURE_*, SESSION_COOKIE_SECURE, CSRF_*   HTTPS: see docs/deployment.md
LOG_LEVEL, LOG_FORMAT, ACCESS_LOG                             logs: see docs/deployment.md
WORKER_STALE_TICKS                                            readiness: see docs/deployment.md
STOCK_ALERTS_HOUR  the clinic's hour the day's stock alerts are emailed from; default 7
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

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

# HTTPS. In production mesoclinic sits behind a reverse proxy that ends TLS (docs/deployment.md).
# BEHIND_TLS_PROXY=1 trusts the proxy's X-Forwarded-Proto header, so Django knows a request
# came over HTTPS; it must only be set when the proxy overwrites that header on every request,
# or a client could claim HTTPS itself. TRUST_PROXY_HEADERS is accepted as another name for it.
BEHIND_TLS_PROXY = _env_flag("BEHIND_TLS_PROXY", _env_flag("TRUST_PROXY_HEADERS"))
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The proxy's address, whose X-Forwarded-Proto and X-Forwarded-For `mesoclinic serve` believes;
# "*" believes any sender, safe only when nothing but the proxy can reach the port.
TRUSTED_PROXY = os.environ.get("TRUSTED_PROXY", "127.0.0.1")
# The next settings default to on once the site is served over HTTPS, so one switch gives a
# safe configuration; each can still be turned off on its own.
SECURE_SSL_REDIRECT = _env_flag("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
# A monitor on the same machine asks for the health endpoints over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = _env_flag("SESSION_COOKIE_SECURE", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = _env_flag("CSRF_COOKIE_SECURE", BEHIND_TLS_PROXY)
# HSTS makes browsers refuse plain HTTP for this host for that many seconds: start small
# (an hour) and raise it to a year once HTTPS works, because it cannot be taken back early.
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = _env_flag("SECURE_HSTS_PRELOAD")
# Django's defaults, written out because the product relies on them: pages do not tell other
# sites which page linked to them (a chart's address names a patient's record), and browsers
# do not guess a content type (an uploaded photo is never run as a script).
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "oauth2_provider",
    "mesoclinic.accounts",
    "mesoclinic.protocols",
    "mesoclinic.patients",
    "mesoclinic.formulary",
    "mesoclinic.billing",
    "mesoclinic.courses",
    "mesoclinic.scheduling",
    "mesoclinic.reminders",
    "mesoclinic.outcomes",
    "mesoclinic.safety",
    "mesoclinic.imports",
    "mesoclinic.site",
    "mesoclinic.ops",
    "mesoclinic.notify",
    "mesoclinic.api",
    "mesoclinic.fhir",
    "mesoclinic.portal",
    "mesoclinic.web",
]

MIDDLEWARE = [
    # First, so that every request is logged with its time, and so that a load balancer's health
    # checks are answered whatever host name or scheme they use (mesoclinic/ops/middleware.py).
    "mesoclinic.ops.middleware.AccessLogMiddleware",
    "mesoclinic.ops.middleware.HealthMiddleware",
    # Before anything that reads a body, so that one too large for its path is refused unread.
    "mesoclinic.api.body_limit.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After whitenoise, so static files keep their long cache lifetimes.
    "mesoclinic.ops.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Moves a signed-in session's expiry on (SESSION_IDLE_TIMEOUT_MINUTES, below).
    "mesoclinic.accounts.middleware.SessionIdleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A browser handed to a patient (the kiosk) reaches only that patient's intake forms.
    "mesoclinic.web.kiosk.KioskMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mesoclinic.api.middleware.ApiProblemMiddleware",
    "mesoclinic.api.idempotency.IdempotencyMiddleware",
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
                "mesoclinic.web.kiosk.context",
            ],
            # {% url %} that remembers the addresses it builds (web/templatetags/addresses.py).
            "builtins": ["mesoclinic.web.templatetags.addresses"],
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
# (The audit row of a read alone commits with NORMAL: see accounts.models._trail_commit.)
SQLITE_SYNCHRONOUS = "FULL"
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS}; "
        "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;"
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
# What one photo may cost, each the product's choice (docs/photos.md gives the figures).
# PHOTO_MAX_BYTES: the upload, counted as it streams in (15 MB holds any phone's photo at full
# quality). PHOTO_MAX_PIXELS: checked from the header before decoding, since memory follows
# pixels, not bytes (36 MP takes in any 12 or 24 MP phone and a 33 MP camera). PHOTO_MAX_SIDE:
# the long side stored; a larger picture is scaled down to it. PHOTO_MAX_CONCURRENT_DECODES:
# how many photos this process decodes at once; more uploads wait their turn.
PHOTO_MAX_BYTES = int(os.environ.get("PHOTO_MAX_BYTES", 15 * 1024 * 1024))
PHOTO_MAX_PIXELS = int(os.environ.get("PHOTO_MAX_PIXELS", 36_000_000))
PHOTO_MAX_SIDE = int(os.environ.get("PHOTO_MAX_SIDE", 4096))
PHOTO_MAX_CONCURRENT_DECODES = int(os.environ.get("PHOTO_MAX_CONCURRENT_DECODES", 2))
# The largest request body the server buffers: waitress reads a whole body, chunked or not,
# before Django sees it, so this is what stops a 200 MB upload at the door. The largest real
# body is the web form of one area's four views at PHOTO_MAX_BYTES each, plus its text fields.
MAX_REQUEST_BYTES = int(os.environ.get("MAX_REQUEST_BYTES", 4 * PHOTO_MAX_BYTES + 2 * 1024 * 1024))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "clinical_photos": _photos,
}
# Static files are served by whitenoise from the app directories when they have not been collected.
WHITENOISE_USE_FINDERS = True

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"


def email_from_url(url: str) -> dict[str, object]:
    """The SMTP settings in one address, handy in a systemd EnvironmentFile:
    smtp://user:password@host:25 (plain), smtp+tls://…:587 (STARTTLS) or smtps://…:465 (TLS).
    The user and password are percent-encoded, so an @ in a password is written %40."""
    parts = urlsplit(url)
    schemes = {
        "smtp": (False, False, 25),
        "smtp+tls": (True, False, 587),
        "smtps": (False, True, 465),
    }
    if parts.scheme not in schemes:
        raise ValueError(f"EMAIL_URL starts with smtp://, smtp+tls:// or smtps://, not {url!r}")
    use_tls, use_ssl, port = schemes[parts.scheme]
    query = parse_qs(parts.query)
    return {
        "EMAIL_BACKEND": SMTP_BACKEND,
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": int(query["timeout"][0]) if "timeout" in query else None,
    }


# Without EMAIL_URL or EMAIL_BACKEND, emails are printed to the console: right for the demo, and
# refused by `mesoclinic serve` unless ALLOW_CONSOLE_EMAIL=1 says it is meant (cli.py).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", CONSOLE_EMAIL_BACKEND)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "clinic@localhost")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# The SMTP server, for EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_flag("EMAIL_USE_TLS")
EMAIL_USE_SSL = _env_flag("EMAIL_USE_SSL")
ALLOW_CONSOLE_EMAIL = _env_flag("ALLOW_CONSOLE_EMAIL")
# Seconds; Django's default is to wait for ever, which would stall the reminder worker.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
if os.environ.get("EMAIL_URL"):
    _email = email_from_url(os.environ["EMAIL_URL"])
    EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", str(_email["EMAIL_BACKEND"]))
    EMAIL_HOST = str(_email["EMAIL_HOST"])
    EMAIL_PORT = int(str(_email["EMAIL_PORT"]))
    EMAIL_HOST_USER = str(_email["EMAIL_HOST_USER"])
    EMAIL_HOST_PASSWORD = str(_email["EMAIL_HOST_PASSWORD"])
    EMAIL_USE_TLS = bool(_email["EMAIL_USE_TLS"])
    EMAIL_USE_SSL = bool(_email["EMAIL_USE_SSL"])
    if _email["EMAIL_TIMEOUT"] is not None:
        EMAIL_TIMEOUT = int(str(_email["EMAIL_TIMEOUT"]))
# The public address of this site, for the links in emails (no trailing slash).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Text messages through a Twilio-style HTTP API (mesoclinic/notify/sms.py). Without
# SMS_PROVIDER_URL no text is sent: patients who agreed to texts get email only.
SMS_PROVIDER_URL = os.environ.get("SMS_PROVIDER_URL", "").rstrip("/")
SMS_ACCOUNT_SID = os.environ.get("SMS_ACCOUNT_SID", "")
SMS_AUTH_TOKEN = os.environ.get("SMS_AUTH_TOKEN", "")
SMS_FROM = os.environ.get("SMS_FROM", "")
# Online card payment (mesoclinic/billing/online.py): each clinic sets its own Stripe keys on
# its payment policy page. The API's address is Stripe's own unless the operator points it
# elsewhere (the tests point it at a server on loopback that answers as Stripe's API does).
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
# Where Stripe's payment page is: a form that sends the browser there must be allowed to.
STRIPE_CHECKOUT_ORIGIN = os.environ.get("STRIPE_CHECKOUT_ORIGIN", "https://checkout.stripe.com")

LOGIN_URL = "/accounts/login/"

# SMART App Launch (mesoclinic/fhir/smart.py, docs/fhir.md): the OAuth2 server for apps a
# clinic registers. Authorization code with PKCE only; SMART's scopes; tokens kept hashed.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "mesoclinic.fhir.smart.SmartScopes",
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # S256, never plain
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("SMART_ACCESS_TOKEN_SECONDS", "3600")),
    "REFRESH_TOKEN_EXPIRE_SECONDS": int(os.environ.get("SMART_REFRESH_TOKEN_DAYS", "90")) * 86400,
    "ROTATE_REFRESH_TOKEN": True,
    # A refresh token used twice revokes every token it led to (RFC 9700 §4.14.2).
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "REQUEST_APPROVAL_PROMPT": "force",
    # No implicit or password grant, no token in a query string, `iss` in each authorization
    # response (RFC 9700).
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
}
# An app on the person's own computer returns to http://localhost or 127.0.0.1 (RFC 8252); the
# registration form refuses http for any other address, so the warning that http redirects
# are allowed at all does not apply.
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.W008"]
LOGIN_REDIRECT_URL = "/today/"
# The patient portal's links (mesoclinic/portal): how long an invitation from the chart and a
# registration's email verification stay usable. Each works once.
PORTAL_INVITE_HOURS = int(os.environ.get("PORTAL_INVITE_HOURS", "72"))
PORTAL_VERIFY_HOURS = int(os.environ.get("PORTAL_VERIFY_HOURS", "24"))
# How long a waitlist offer of a freed slot stays open before it goes to the next patient.
WAITLIST_OFFER_MINUTES = int(os.environ.get("WAITLIST_OFFER_MINUTES", "120"))
LOGOUT_REDIRECT_URL = "/accounts/login/"

# How long an API token stays valid, in hours.
# The largest request body the server accepts outside photo uploads (PHOTO_MAX_BYTES, above).
# BodySizeLimitMiddleware refuses a larger one with 413 from its Content-Length, before it is
# read; Django's own limit on what it holds in memory is kept equal to the first.
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# The largest CSV file the import pages take (docs/import.md): a clinic's whole patient list
# fits many times over.
IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(4 * 1024 * 1024)))

API_TOKEN_TTL_HOURS = int(os.environ.get("API_TOKEN_TTL_HOURS", "12"))
# How long the API remembers an Idempotency-Key's first answer, in hours, and how long a request
# waits for a parallel one with the same key before answering 409 (docs/api.md).
IDEMPOTENCY_KEY_TTL_HOURS = float(os.environ.get("IDEMPOTENCY_KEY_TTL_HOURS", "24"))
IDEMPOTENCY_WAIT_SECONDS = float(os.environ.get("IDEMPOTENCY_WAIT_SECONDS", "10"))

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
# Tablet handover (docs/portal.md, Tablet handover): this many wrong PINs in a row lock the
# staff member's PIN until they sign in with their password.
KIOSK_PIN_ATTEMPTS = int(os.environ.get("KIOSK_PIN_ATTEMPTS", "5"))

# Safety surveillance (docs/surveillance.md). SPEC gives none of these numbers: each is the
# product's choice, with its default in mesoclinic/safety/surveil.py DEFAULTS.
SURVEIL_INTERVAL_HOURS = float(os.environ.get("SURVEIL_INTERVAL_HOURS", "6"))
# FHIR Bulk Data `$export` (docs/fhir.md#bulk-export): where the worker writes the NDJSON files,
# how long a finished export's files are kept, and how long a worker may hold a job before
# another takes it over (a worker that died mid-export).
FHIR_EXPORT_DIR = Path(os.environ.get("FHIR_EXPORT_DIR", DATA_DIR / "fhir-exports"))
FHIR_EXPORT_RETENTION_HOURS = float(os.environ.get("FHIR_EXPORT_RETENTION_HOURS", "24"))
FHIR_EXPORT_LEASE_MINUTES = float(os.environ.get("FHIR_EXPORT_LEASE_MINUTES", "60"))
SURVEIL_BASELINE_DAYS = int(os.environ.get("SURVEIL_BASELINE_DAYS", "365"))
SURVEIL_PRIOR_RATE = float(os.environ.get("SURVEIL_PRIOR_RATE", "0.01"))
SURVEIL_PRIOR_SESSIONS = float(os.environ.get("SURVEIL_PRIOR_SESSIONS", "100"))

# The stock alerts' email (docs/stock.md): sent once a day to each clinic's managers, from this
# hour of the clinic's own clock, when something in the stock needs attention.
STOCK_ALERTS_HOUR = int(os.environ.get("STOCK_ALERTS_HOUR", "7"))
SURVEIL_CUSUM_RATE_RATIO = float(os.environ.get("SURVEIL_CUSUM_RATE_RATIO", "5"))
SURVEIL_CUSUM_FALSE_ALARM = float(os.environ.get("SURVEIL_CUSUM_FALSE_ALARM", "0.05"))
SURVEIL_CUSUM_HORIZON = int(os.environ.get("SURVEIL_CUSUM_HORIZON", "500"))
SURVEIL_MAXSPRT_ALPHA = float(os.environ.get("SURVEIL_MAXSPRT_ALPHA", "0.05"))
SURVEIL_MAXSPRT_SESSIONS = int(os.environ.get("SURVEIL_MAXSPRT_SESSIONS", "200"))
SURVEIL_MAXSPRT_MIN_EVENTS = int(os.environ.get("SURVEIL_MAXSPRT_MIN_EVENTS", "2"))
SURVEIL_NEW_LOT_DAYS = int(os.environ.get("SURVEIL_NEW_LOT_DAYS", "180"))

# The worker writes a heartbeat each tick; /readyz and the Today page call it stopped when the
# last one is older than this many of its ticks (mesoclinic/ops/health.py).
WORKER_STALE_TICKS = float(os.environ.get("WORKER_STALE_TICKS", "3"))

# Logs go to standard error, where systemd's journal (or a container runtime) collects them.
# LOG_FORMAT=json writes one JSON object a line for a log collector; ACCESS_LOG=0 turns the one
# line per request off (mesoclinic/ops/logging.py).
LOG_LEVEL = os.environ.get("LOG_LEVEL", "WARNING").upper()
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ValueError(f"LOG_FORMAT is 'text' or 'json', not {LOG_FORMAT!r}")
ACCESS_LOG = _env_flag("ACCESS_LOG", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Django logs a refused (403) or missing (404) page with its traceback; that is ordinary
        # traffic, not a fault, so the line stays and the traceback goes.
        "no_client_error_tracebacks": {"()": "mesoclinic.ops.logging.DropClientErrorTracebacks"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "mesoclinic.ops.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "mesoclinic.ops.logging.StderrHandler",
            "formatter": LOG_FORMAT,
            "filters": ["no_client_error_tracebacks"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The access log is at INFO, so it is written whatever LOG_LEVEL the rest uses.
        # Django's own line for each 4xx answer repeats the access log's, with the path
        # unredacted; it keeps its errors (5xx, with their tracebacks).
        "django.request": {"level": "ERROR" if ACCESS_LOG else LOG_LEVEL},
        "mesoclinic.access": {
            "handlers": ["console"],
            "level": "INFO" if ACCESS_LOG else "CRITICAL",
            "propagate": False,
        },
    },
}
