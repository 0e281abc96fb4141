"""Porte settings: one module, driven by the environment (django-environ).

Embedded defaults make `make run` work on a bare machine (SQLite file, a broker that needs no server, moto on
loopback). Production sets PORTE_PRODUCTION=1, which switches on the hardening below and refuses to start with
development secrets.
"""

import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of a development or demo run (SQLite file, filesystem broker, collected static files).
VAR_DIR = Path(environ.Env().str("PORTE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

PRODUCTION = env.bool("PORTE_PRODUCTION", default=False)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)

_DEV_SECRET = "porte-development-only-secret-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
# Fernet keys, newest first (MultiFernet): rotate by prepending a new key.
_DEV_FERNET_KEY = "cG9ydGUtZGV2ZWxvcG1lbnQtb25seS1mZXJuZXQta2U="
ENCRYPTION_KEYS = env.list("PORTE_ENCRYPTION_KEYS", default=[_DEV_FERNET_KEY])
if PRODUCTION and (SECRET_KEY == _DEV_SECRET or _DEV_FERNET_KEY in ENCRYPTION_KEYS):
    raise ImproperlyConfigured(
        "PORTE_PRODUCTION=1 needs SECRET_KEY and PORTE_ENCRYPTION_KEYS from the environment."
    )

PUBLIC_URL = env.str("PORTE_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
_public_host = urlparse(PUBLIC_URL).hostname or "127.0.0.1"
# In production the Host header is trusted for one name only, the public URL's: links in mail, SAML metadata and
# redirects can then never be built from a host an attacker chose.
ALLOWED_HOSTS = (
    [_public_host]
    if PRODUCTION
    else env.list("ALLOWED_HOSTS", default=[_public_host, "127.0.0.1", "localhost"])
)
# Plain-http IdP addresses (discovery, metadata, tokens) are refused unless this is set: local IdPs in a demo.
IDP_ALLOW_HTTP = env.bool("PORTE_IDP_ALLOW_HTTP", default=not PRODUCTION)
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from Porte (no third-party origin)
    "portal",
    "partners",
    "grants",
    "directory",
    "workloads",
    "approvals",
    "reviews",
    "activity",
    "home",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "portal.middleware.saml_on_public_origin",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.session_limits",
    # Standing and audience of every request (portal/gate.py).
    "portal.gate.Gate",
    # Text no field can store (NUL, unpaired surrogates) is refused before any view (portal/validation.py).
    "portal.middleware.InputGuard",
    "portal.middleware.content_security_policy",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
SITE_ID = 1

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
                "portal.context_processors.actor",
                # Activity views: the ingestion-lag banner (lazy: computed only where a page shows it).
                "activity.context_processors.activity_lag",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'porte.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: WAL lets readers run beside the writer, IMMEDIATE takes the write
    # lock at BEGIN so concurrent writers queue instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The test database must be a file, not memory, so a real worker process can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-porte.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.3):
            return True
    except OSError:
        return False


# --- cache: shared by every process (rate limits, SAML assertion and JWT replay caches) -------------------------
_DEFAULT_CACHE_REDIS = "redis://127.0.0.1:6379/1"
CACHE_URL = env.str("CACHE_URL", default="")
if CACHE_URL:
    CACHES = {"default": env.cache_url_config(CACHE_URL)}
elif _redis_reachable(_DEFAULT_CACHE_REDIS):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _DEFAULT_CACHE_REDIS,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery -------------------------------------------------------------------------------------------------
_DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
if not CELERY_BROKER_URL:
    # Embedded default: Redis when one answers, else kombu's filesystem transport (no server at all).
    CELERY_BROKER_URL = _DEFAULT_REDIS if _redis_reachable(_DEFAULT_REDIS) else "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        # Its exchange tables (broadcasts); by default a `control/` folder in the working directory.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        # kombu polls the folder; its 1 s default would add a second to every activation.
        "polling_interval": 0.05,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
# Ending access goes first: a worker takes from `revocations` in turn with the default queue, so an early revoke
# or an expiry never waits behind a backlog of ingestion or provisioning (production may also run a worker on
# `revocations` alone: docker-compose.yml).
CELERY_TASK_QUEUES = (Queue("revocations"), Queue("celery"))
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "grants.tasks.role_finish_endings": {"queue": "revocations"},
    "grants.tasks.grant_expire": {"queue": "revocations"},
}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- AWS ----------------------------------------------------------------------------------------------------
# One variable points every client at moto locally; unset in production (real AWS endpoints).
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="") or None
AWS_REGION = env.str("AWS_REGION", default="eu-west-1")
# Role Porte assumes in each partner account to provision scoped roles.
AWS_PARTNER_ADMIN_ROLE_NAME = env.str("PORTE_PARTNER_ADMIN_ROLE", default="OrganizationAccountAccessRole")
# Principal that assumes the scoped roles. When it is itself a role (assumed first), AWS limits chained sessions
# to one hour, and Porte clamps durations accordingly.
AWS_BROKER_ROLE_ARN = env.str("PORTE_BROKER_ROLE_ARN", default="") or None
AWS_BROKER_PRINCIPAL_ARN = env.str("PORTE_BROKER_PRINCIPAL_ARN", default="") or None
AWS_FEDERATION_URL = env.str("PORTE_AWS_FEDERATION_URL", default="https://signin.aws.amazon.com/federation")
AWS_CONSOLE_URL = env.str("PORTE_AWS_CONSOLE_URL", default="https://console.aws.amazon.com/")
# Partner accounts: vended into this organizational unit (created under the root when missing), with this root
# email ({slug} is the partner's slug) unless staff give another.
AWS_PARTNERS_OU_NAME = env.str("PORTE_PARTNERS_OU", default="Partners")
AWS_PARTNER_ACCOUNT_EMAIL = env.str(
    "PORTE_PARTNER_ACCOUNT_EMAIL", default="aws+{slug}@partners.porte.invalid"
)
# Network baseline of every partner account: the VPC's CIDR (AWS accepts /16 to /28) and the services that get a
# VPC endpoint (a gateway endpoint where AWS offers one, as for s3, else a PrivateLink interface endpoint).
PARTNER_VPC_CIDR = str(ipaddress.ip_network(env.str("PORTE_PARTNER_VPC_CIDR", default="10.64.0.0/16")))
PARTNER_VPC_ENDPOINT_SERVICES = env.list("PORTE_PARTNER_VPC_ENDPOINTS", default=["s3", "sts", "ssm", "logs"])
if not all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name) for name in PARTNER_VPC_ENDPOINT_SERVICES):
    raise ImproperlyConfigured("PORTE_PARTNER_VPC_ENDPOINTS: service names like s3,sts,ssm,logs")
# How often a vending task asks Organizations whether CreateAccount finished (it takes minutes on AWS).
ACCOUNT_POLL_SECONDS = env.float("PORTE_ACCOUNT_POLL_SECONDS", default=15.0)

# --- Porte behaviour ----------------------------------------------------------------------------------------
EXPIRY_SWEEP_SECONDS = env.float("PORTE_EXPIRY_SWEEP_SECONDS", default=2.0)
RECONCILE_SECONDS = env.float("PORTE_RECONCILE_SECONDS", default=300.0)
# A grant claimed by a sweeper or activator that died is retried after this long.
TRANSITION_LEASE_SECONDS = env.int("PORTE_TRANSITION_LEASE_SECONDS", default=60)
# How long a writer of a role's IAM holds the role (grants/role_lease.py): longer than the slowest AWS call with
# its retries (portal/aws.py), since a writer that dies leaves the role to others only when it runs out.
IAM_LEASE_SECONDS = env.int("PORTE_IAM_LEASE_SECONDS", default=90)
# Account vending / network baselines with a pending step untouched this long are resumed (beat, same period).
PROVISION_RESUME_SECONDS = env.float("PORTE_PROVISION_RESUME_SECONDS", default=300.0)

# --- activity (the organisation's CloudTrail trail) ---------------------------------------------------------
# The bucket the organisation trail delivers to, and the trail's own S3 key prefix if it has one.
ACTIVITY_TRAIL_BUCKET = env.str("PORTE_TRAIL_BUCKET", default="porte-org-trail")
ACTIVITY_TRAIL_PREFIX = env.str("PORTE_TRAIL_PREFIX", default="").strip("/")
# Approvals: how often pending requests are lapsed and "access ends soon" notices are sent (beat).
APPROVALS_SWEEP_SECONDS = env.float("PORTE_APPROVALS_SWEEP_SECONDS", default=60.0)
ACTIVITY_INGEST_SECONDS = env.float("PORTE_ACTIVITY_INGEST_SECONDS", default=60.0)
# At most this many log files per run (the next run goes on from the cursor).
ACTIVITY_INGEST_MAX_OBJECTS = env.int("PORTE_ACTIVITY_INGEST_MAX_OBJECTS", default=2000)
# CloudTrail may deliver a file whose name sorts before one already ingested; files named up to this long before
# the newest ingested one are still picked up.
ACTIVITY_LOOKBACK_SECONDS = env.int("PORTE_ACTIVITY_LOOKBACK_SECONDS", default=1800)
# Optional near-real-time path: an SQS queue that the trail bucket's S3 event notifications reach (directly or
# through SNS; CloudTrail's own SNS delivery notices work too), read every PORTE_ACTIVITY_SQS_POLL_SECONDS.
ACTIVITY_SQS_QUEUE_URL = env.str("PORTE_ACTIVITY_SQS_QUEUE_URL", default="")
ACTIVITY_SQS_POLL_SECONDS = env.float("PORTE_ACTIVITY_SQS_POLL_SECONDS", default=10.0)
ACTIVITY_RETENTION_DAYS = env.int("PORTE_ACTIVITY_RETENTION_DAYS", default=400)
if ACTIVITY_RETENTION_DAYS < 1 or ACTIVITY_INGEST_MAX_OBJECTS < 1 or ACTIVITY_LOOKBACK_SECONDS < 0:
    raise ImproperlyConfigured(
        "PORTE_ACTIVITY_RETENTION_DAYS and PORTE_ACTIVITY_INGEST_MAX_OBJECTS must be at least 1, "
        "PORTE_ACTIVITY_LOOKBACK_SECONDS at least 0."
    )
# Activity views: the pages warn when the newest ingested event is older than this; exports stop at this many events.
ACTIVITY_LAG_WARN_MINUTES = env.int("PORTE_ACTIVITY_LAG_WARN_MINUTES", default=30)
ACTIVITY_EXPORT_MAX_EVENTS = env.int("PORTE_ACTIVITY_EXPORT_MAX_EVENTS", default=100_000)
if ACTIVITY_LAG_WARN_MINUTES < 1 or ACTIVITY_EXPORT_MAX_EVENTS < 1:
    raise ImproperlyConfigured(
        "PORTE_ACTIVITY_LAG_WARN_MINUTES and PORTE_ACTIVITY_EXPORT_MAX_EVENTS must be at least 1."
    )

# --- alerts and metrics (detection on activity, the staff metrics dashboard, /metrics) ------------------------
# A burst of refused calls: at least this many by one principal within this many minutes is one alert.
ALERT_DENIED_BURST_COUNT = env.int("PORTE_ALERT_DENIED_BURST_COUNT", default=10)
ALERT_DENIED_BURST_MINUTES = env.int("PORTE_ALERT_DENIED_BURST_MINUTES", default=5)
# After an early revocation, IAM takes a little while to apply the deny everywhere: calls this soon after it are
# not yet "used after the grant ended".
ALERT_DENY_PROPAGATION_SECONDS = env.int("PORTE_ALERT_DENY_PROPAGATION_SECONDS", default=60)
if ALERT_DENIED_BURST_COUNT < 2 or ALERT_DENIED_BURST_MINUTES < 1 or ALERT_DENY_PROPAGATION_SECONDS < 0:
    raise ImproperlyConfigured(
        "PORTE_ALERT_DENIED_BURST_COUNT must be at least 2, PORTE_ALERT_DENIED_BURST_MINUTES at least 1, "
        "PORTE_ALERT_DENY_PROPAGATION_SECONDS at least 0."
    )
# Bearer token a Prometheus scraper presents at /metrics (empty: only signed-in staff may read it).
METRICS_TOKEN = env.str("PORTE_METRICS_TOKEN", default="")
# The figures are computed at most once per this many seconds (cached), so scrapes and page views are cheap.
METRICS_CACHE_SECONDS = env.int("PORTE_METRICS_CACHE_SECONDS", default=60)
# A health sample (the /health/ checks) is recorded this often, for the availability figure.
HEALTH_SAMPLE_SECONDS = env.float("PORTE_HEALTH_SAMPLE_SECONDS", default=60.0)
AUDIT_SEAL_SECONDS = env.float("PORTE_AUDIT_SEAL_SECONDS", default=2.0)

# --- authentication (allauth) -------------------------------------------------------------------------------
# Passwords sign in staff only; partner people sign in through their IdP (portal/auth_backends.py).
AUTHENTICATION_BACKENDS = ["portal.auth_backends.PorteBackend"]
LOGIN_URL = "sign_in"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_ADAPTER = "partners.adapter.PorteAccountAdapter"
SOCIALACCOUNT_ADAPTER = "partners.adapter.PartnerSocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
# Password reset mails go to staff accounts only, and never to an address Porte does not know.
ACCOUNT_FORMS = {"reset_password": "portal.forms.StaffResetPasswordForm"}
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
ACCOUNT_SESSION_REMEMBER = False
# Identity is (IdP, subject): never look a user up, connect or sign up by email.
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_EMAIL_REQUIRED = False
SOCIALACCOUNT_QUERY_EMAIL = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    # Porte's subclasses add nonce, signature/algorithm, issuer-pinning and replay checks (partners/oidc.py, saml.py).
    "openid_connect": {"OAUTH_PKCE_ENABLED": True, "provider_class": "partners.oidc.PorteOidcProvider"},
    "saml": {"provider_class": "partners.saml.PorteSamlProvider"},
}
# Staff lockout: allauth's failed-login limits (per account and per address), kept in the shared cache.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("PORTE_LOGIN_FAILED_LIMIT", default="10/m/ip,5/15m/key"),
    "login": "30/m/ip",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_ADAPTER = "portal.mfa_adapter.PorteMFAAdapter"
MFA_TOTP_ISSUER = "Porte"

# Absolute and idle limits of a signed-in session (enforced by portal.middleware.session_limits).
SESSION_ABSOLUTE_SECONDS = env.int("PORTE_SESSION_ABSOLUTE_SECONDS", default=8 * 3600)
SESSION_IDLE_SECONDS = env.int("PORTE_SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS
SESSION_ENGINE = "portal.sessions"  # Django's database sessions, fewer round trips per write
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- partners' directories (SCIM 2.0, django-scim2; Porte's adapters in directory/) ---------------------------
SCIM_SERVICE_PROVIDER = {
    "NETLOC": PUBLIC_URL.split("://", 1)[-1],
    "SCHEME": PUBLIC_URL.split("://", 1)[0],
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "Partner SCIM token",
            "description": "The partner's SCIM token (porte_scim_…), made by Porte staff on the partner's page.",
            "primary": True,
        }
    ],
    "AUTH_CHECK_MIDDLEWARE": "directory.scim.DirectoryAuthentication",
    "USER_MODEL_GETTER": "directory.filters.user_model",
    "USER_ADAPTER": "directory.scim.ScimUser",
    "GROUP_MODEL": "directory.models.DirectoryGroup",
    "GROUP_ADAPTER": "directory.scim.ScimGroup",
    "USER_FILTER_PARSER": "directory.filters.UserFilter",
    "GROUP_FILTER_PARSER": "directory.filters.GroupFilter",
    "SERVICE_PROVIDER_CONFIG_MODEL": "directory.scim.ServiceProviderConfig",
    "BASE_LOCATION_GETTER": "directory.filters.base_location",
    "GET_EXTRA_MODEL_FILTER_KWARGS_GETTER": "directory.filters.extra_filter_kwargs",
    "GET_EXTRA_MODEL_EXCLUDE_KWARGS_GETTER": "directory.filters.extra_exclude_kwargs",
    "GET_OBJECT_POST_PROCESSOR_GETTER": "directory.filters.object_post_processor",
    "GET_QUERYSET_POST_PROCESSOR_GETTER": "directory.filters.queryset_post_processor",
    "SCHEMAS_GETTER": "directory.filters.schemas",
}

# --- API ----------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The token class comes first: it alone answers a refused token with 401 and a Bearer challenge.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api_auth.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"mint": "30/min"},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Porte API",
    "DESCRIPTION": "Just-in-time AWS access for partner organisations.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Reading the docs needs no token; trying a call uses the browser's session, with its CSRF token.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": False},
}

# --- static, i18n -------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


# Notifications (portal/notifications.py): printed to the console locally; SMTP etc. by EMAIL_BACKEND/EMAIL_* in
# production. Webhooks only to https URLs in production.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# With the file backend (the demo's mailbox), where each e-mail is written.
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Porte <porte@porte.invalid>")

# --- logging: never log secrets; our own loggers at INFO -----------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

# --- production hardening: one flag ------------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # probed over plain http inside the cluster
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
