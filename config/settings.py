"""Typed settings, read once from the environment at the edge (create_app, create_celery).

Every field is read from the upper-case environment variable of the same name. A bad
value raises SettingsError naming the variable, so a process refuses to start instead
of failing later. With no DATABASE_URL / BROKER_URL the embedded servers under
VAR_DIR are used (DESIGN §3).
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from limits import parse_many
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

EMBEDDED_REDIS_PORT = 16379
# The gettext catalogues (Babel): translations/<locale>/LC_MESSAGES/messages.{po,mo}.
TRANSLATIONS_DIR = Path(__file__).resolve().parents[1] / "translations"
POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")
Port = Annotated[int, Field(ge=1, le=65535)]


CGROUP = Path("/sys/fs/cgroup")
# A host name: dot-separated labels of letters, digits and inner dashes, the last not all
# digits (``0`` or ``999.1.1.1`` would be read as an IPv4 number), an optional final dot.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*(?=[^.]*[A-Za-z-])(?:{_LABEL})\.?")


def cpus(cgroup: Path = CGROUP) -> int:
    """The CPUs this process may use: its affinity (a cpuset narrows it), and no more than a
    CPU quota rounded up (cgroup v2 ``cpu.max`` or v1's CFS quota: ``docker run --cpus``)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    return max(1, min(count, math.ceil(quota))) if quota else count


def _cpu_quota(cgroup: Path) -> float | None:
    """CPUs' worth of time the cgroup may use per period; None when unlimited or unknown."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseModel):
    """Everything a process needs to know about its surroundings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    secret_key: str = ""
    database_url: str = ""
    trial_database_url: str = ""
    placement_servers: tuple[str, ...] = ()
    broker_url: str = ""
    result_backend: str = ""
    routing_cache_ttl: float = Field(default=5.0, ge=0)
    engine_cache_size: int = Field(default=32, ge=2)
    db_pool_size: int = Field(default=5, ge=1)
    tenant_db_role: str = "allotment_tenant"
    message_lease_seconds: float = Field(default=60.0, gt=0)
    message_max_attempts: int = Field(default=8, ge=1)
    # A handler's transient failure (a database hiccup, a gateway down) is retried four times
    # by its worker, after this many seconds, then twice, four and eight times as long (15 s in
    # all by default: inside the lease, so the relay does not re-send a message waiting for
    # its retry). After the last, a payment fails and other messages are left to the relay.
    task_retry_seconds: float = Field(default=1.0, gt=0, le=60)
    relay_interval_seconds: float = Field(default=10.0, gt=0)
    relay_batch_size: int = Field(default=500, ge=1)
    message_retention_days: float = Field(default=7.0, gt=0)
    migration_concurrency: int = Field(default=4, ge=1)
    # Promotion (trial -> dedicated): how often beat resumes unfinished promotions, and how
    # long after the routing switch the trial rows are kept (stale route caches expire first).
    promotion_resume_seconds: float = Field(default=30.0, gt=0)
    promotion_purge_grace_seconds: float = Field(default=6.0, ge=0)
    # Payment gateway behind the purchases worker; "sandbox" is a test card processor.
    payment_gateway: Literal["sandbox"] = "sandbox"
    # Where assets and tenant exports are stored: a folder under VAR_DIR, or an S3 bucket
    # (any S3-compatible endpoint; credentials from boto3's usual AWS_* variables).
    storage_backend: Literal["local", "s3"] = "local"
    s3_endpoint_url: str = ""
    s3_bucket: str = Field(default="", validate_default=True)
    s3_region: str = "us-east-1"
    # Assets: the largest file one upload may carry, a tenant's storage quota unless an
    # operator sets its own, the longest edge of each image rendition (px), how long signed
    # download and upload links work, the most pixels an image may decode to (decompression
    # bombs), and how long an upload link's file may wait for its confirm before beat's
    # clean-up (every ASSET_CLEANUP_SECONDS) removes it.
    asset_max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    asset_quota_bytes: int = Field(default=1024 ** 3, ge=0)
    asset_rendition_sizes: tuple[int, ...] = (160, 640, 1280)
    asset_link_seconds: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    asset_upload_link_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    asset_max_image_pixels: int = Field(default=50_000_000, ge=1)
    asset_unconfirmed_seconds: float = Field(default=3600.0, gt=0)
    asset_cleanup_seconds: float = Field(default=600.0, gt=0)
    # Admission control per (tenant, queue): the most messages one tenant may have in flight
    # on a queue ("assets=4,purchases=8"); the rest wait in the outbox (domain.messaging.fairness).
    fairness_limits: dict[str, int] = Field(default_factory=lambda: {"assets": 4})
    task_soft_time_limit: int = Field(default=240, ge=1)
    task_time_limit: int = Field(default=300, ge=1)
    worker_max_tasks_per_child: int = Field(default=1000, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    max_content_length: int = Field(default=1_048_576, ge=1024)
    jwt_access_minutes: int = Field(default=15, ge=1)
    jwt_refresh_days: float = Field(default=30.0, gt=0)
    invitation_days: float = Field(default=7.0, gt=0)
    # How long the link in the welcome email that verifies a new admin's address works.
    email_verification_hours: float = Field(default=72.0, gt=0, le=30 * 24)
    # How long a link that sets a new password (a lost one) works.
    password_reset_minutes: float = Field(default=60.0, gt=0, le=24 * 60)
    # External OpenID Connect provider (Auth0-compatible); unset, OIDC sign-in is off.
    oidc_issuer: str = ""
    oidc_client_id: str = Field(default="", validate_default=True)
    oidc_client_secret: str = ""
    oidc_jwks_cache_seconds: float = Field(default=3600.0, ge=0)
    # Flask-Limiter limits (its syntax: "10 per minute; 100 per hour"), kept in Redis.
    rate_limit_sign_in: str = "10 per minute; 100 per hour"
    rate_limit_sign_up: str = "5 per minute; 50 per hour"
    rate_limit_invitations: str = "30 per hour; 200 per day"  # per tenant
    rate_limit_email_verification: str = "3 per hour; 10 per day"  # new verification links per user
    # Links that set a lost password, per address and per IP.
    rate_limit_password_reset: str = "5 per hour; 20 per day"  # noqa: S105 - a rate, not a password
    rate_limit_storage_url: str = ""
    permission_cache_size: int = Field(default=10_000, ge=1)
    # Mirror revoked sessions and IAM versions in each web process (pub/sub) instead of
    # reading Redis on every request; off during a rolling deploy from code that does not
    # publish access changes, or to make every request consult Redis.
    access_mirror: bool = True
    cookie_secure: bool = True
    # How many reverse proxies (load balancers) sit in front of the web tier: their
    # X-Forwarded-For/-Proto are trusted that many hops deep (rate limits key on the IP).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # Where users reach the web app: links in emails point here.
    public_url: str = "http://127.0.0.1:8000"
    mail_from: str = "Allotment <no-reply@allotment.localhost>"
    # The web process (gunicorn, config/gunicorn.py) and Flower (workers/flower.py). Sync
    # workers wait on PostgreSQL and Redis in every request, so one more than the CPUs keeps
    # the CPUs busy (bench/README.md, "Web workers"); WEB_THREADS > 1 makes them gthread.
    web_host: str = "127.0.0.1"
    web_port: Port = 8000
    web_concurrency: int = Field(default_factory=lambda: cpus() + 1, ge=1)
    web_threads: int = Field(default=1, ge=1)
    # A web request's database work: a statement that runs (or waits for a lock) longer than
    # WEB_STATEMENT_TIMEOUT_MS, or waits for one lock longer than WEB_LOCK_TIMEOUT_MS, is
    # cancelled by PostgreSQL and the request answered 503 with Retry-After (0: no limit). Only
    # the lock limit reaches a COMMIT (a deferred constraint's check waits there): PostgreSQL
    # stops the statement timer before it commits. Both stay under gunicorn's 30-second worker
    # timeout, past which the worker is killed and the client gets no answer at all. A write
    # that meets a tenant promotion's copy waits for it up to these limits. The web app's
    # connections only (the CLI's included); workers have Celery's time limits.
    web_lock_timeout_ms: int = Field(default=20_000, ge=0, le=25_000)
    web_statement_timeout_ms: int = Field(default=20_000, ge=0, le=25_000)
    flower_address: str = "127.0.0.1"
    flower_port: Port = 5555
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Bearer token a metrics scraper presents at /metrics; unset, the endpoint does not exist.
    metrics_token: str = ""
    # Notifications (README "Notifications"). Mail goes through one transport: a Maildir under
    # VAR_DIR/mail, an SMTP server (STARTTLS on by default; SMTP_SSL=true is TLS from the first
    # byte and wins over it; SMTP_CA_FILE is a CA bundle to trust beside the system's), or
    # Amazon SES (credentials: boto3's AWS_* variables).
    mail_transport: Literal["maildir", "smtp", "ses"] = "maildir"
    smtp_host: str = Field(default="", validate_default=True)
    smtp_port: Port = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_ca_file: str = ""
    smtp_timeout: float = Field(default=10.0, gt=0, le=300)
    ses_region: str = "us-east-1"
    ses_endpoint_url: str = ""
    ses_configuration_set: str = ""
    # The password SNS presents (HTTP basic auth) when it posts SES bounces and complaints to
    # /api/v1/notifications/ses-feedback; unset, that endpoint does not exist.
    ses_feedback_token: str = ""
    # Emails one person gets per hour at most; past that, events are notices only (in the digest).
    mail_throttle_per_hour: int = Field(default=30, ge=1, le=100_000)
    # The UTC hour from which beat sends the daily digests (beat checks every DIGEST_CHECK_SECONDS).
    digest_hour: int = Field(default=7, ge=0, le=23)
    digest_check_seconds: float = Field(default=900.0, gt=0)
    # The language of emails and pages for a user who chose none and whose browser asks for
    # none we have (a catalogue under translations/).
    default_locale: str = "en"
    # How long a trial lasts, and how many days before its end its admins are reminded.
    trial_days: int = Field(default=30, ge=1, le=3650)
    trial_reminder_days: int = Field(default=7, ge=1, le=365)
    # The argon2id parameters of new password hashes, by the name of an argon2-cffi profile:
    # RFC 9106's low-memory one (64 MiB, 3 passes) by default, its high-memory one (2 GiB),
    # or "cheapest" (argon2-cffi's profile for test suites; refused in production). A hash
    # carries its parameters, so changing the profile never breaks a stored password.
    password_hash_profile: Literal["rfc9106-low-memory", "rfc9106-high-memory", "cheapest"] = (
        "rfc9106-low-memory")  # noqa: S105 - a profile's name, not a password
    # How often beat looks for scheduled publications that are due (the most a publication
    # goes out after its time).
    publication_schedule_seconds: float = Field(default=30.0, gt=0)

    @field_validator("database_url", "trial_database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if value and not value.startswith(POSTGRES_SCHEMES):
            raise ValueError("must be a PostgreSQL URL (postgresql://...)")
        return _psycopg_url(value) if value else value

    @field_validator("web_host", "flower_address")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOST_NAME.fullmatch(value):
                raise ValueError("must be an IP address or a host name to listen on "
                                 "(no port, no brackets)") from None
        return value

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _redis_only(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "redis+socket://")):
            raise ValueError("must be a Redis URL (redis://host:port/db)")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_with_s3(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("storage_backend") == "s3" and not value:
            raise ValueError("required with STORAGE_BACKEND=s3")
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be the provider's issuer URL (https://...)")
        return value

    @field_validator("oidc_client_id")
    @classmethod
    def _client_with_issuer(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("oidc_issuer") and not value:
            raise ValueError("required with OIDC_ISSUER")
        return value

    @field_validator("rate_limit_sign_in", "rate_limit_sign_up", "rate_limit_invitations",
                     "rate_limit_email_verification", "rate_limit_password_reset")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit ('10 per minute; 100 per hour'): {exc}") from None
        return value

    @field_validator("asset_rendition_sizes", mode="before")
    @classmethod
    def _rendition_sizes(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("must be comma-separated pixel sizes (160,640,1280)") from None
        sizes = tuple(value)  # type: ignore[arg-type]
        if not 1 <= len(sizes) <= 6 or len(set(sizes)) != len(sizes):
            raise ValueError("must name 1 to 6 different sizes")
        if any(not 16 <= int(size) <= 8192 for size in sizes):
            raise ValueError("each size must be 16 to 8192 pixels")
        return tuple(sorted(int(size) for size in sizes))

    @field_validator("fairness_limits", mode="before")
    @classmethod
    def _fairness_limits(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [part.strip().partition("=") for part in value.split(",") if part.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("must be queue=limit pairs (assets=4,purchases=8)")
            try:
                value = {queue.strip(): int(limit) for queue, _, limit in pairs}
            except ValueError:
                raise ValueError("each limit must be a whole number (assets=4)") from None
        limits = dict(value)  # type: ignore[call-overload]
        for queue, limit in limits.items():
            if not re.fullmatch(r"[a-z][a-z_]{0,39}", str(queue)):
                raise ValueError(f"{queue!r} is not a queue name")
            if not 1 <= int(limit) <= 100_000:
                raise ValueError(f"the limit of {queue} must be 1 to 100000")
        return limits

    @field_validator("smtp_host")
    @classmethod
    def _host_with_smtp(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mail_transport") == "smtp" and not value:
            raise ValueError("required with MAIL_TRANSPORT=smtp")
        return value

    @field_validator("ses_endpoint_url")
    @classmethod
    def _ses_endpoint_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", value):
            raise ValueError("must be a locale name such as en or de")
        if not (TRANSLATIONS_DIR / value / "LC_MESSAGES" / "messages.mo").is_file():
            raise ValueError(f"no catalogue for {value!r} under translations/")
        return value

    @field_validator("placement_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        servers = tuple(value)  # type: ignore[arg-type]
        for url in servers:
            if not str(url).startswith(POSTGRES_SCHEMES):
                raise ValueError(f"{url!r} is not a PostgreSQL URL (postgresql://host:port)")
        return tuple(_psycopg_url(_server_url(v)) for v in servers)

    @property
    def embedded(self) -> bool:
        """True when this process relies on the embedded PostgreSQL server under VAR_DIR."""
        # load_settings fills database_url with the embedded URL, so compare against it.
        return self.database_url in ("", embedded_urls(self.var_dir)["database_url"])

    @property
    def redis_url(self) -> str:
        """The Redis used for caches and locks (the broker's server)."""
        return self.broker_url

    @property
    def email_verification_lifetime(self) -> timedelta:
        """How long a link verifying an address works (``EMAIL_VERIFICATION_HOURS``)."""
        return timedelta(hours=self.email_verification_hours)

    @property
    def password_reset_lifetime(self) -> timedelta:
        """How long a link that sets a new password works (``PASSWORD_RESET_MINUTES``)."""
        return timedelta(minutes=self.password_reset_minutes)

    @property
    def oidc_enabled(self) -> bool:
        """True when an external OpenID Connect provider is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id)


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _server_url(url: str) -> str:
    """Strip the database name: placement servers are servers, not databases."""
    head, sep, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/postgres" + (sep + query if sep else "")


def database_on(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url``."""
    head, sep, query = server_url.partition("?")
    scheme, _, rest = head.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{quote(name)}" + (sep + query if sep else "")


def database_name(url: str) -> str:
    """The database name in a PostgreSQL URL."""
    head = url.partition("?")[0]
    return head.partition("://")[2].split("/", 1)[1]


def embedded_urls(var_dir: Path) -> dict[str, str]:
    """URLs of the embedded servers the run command starts under ``var_dir``."""
    socket_dir = (var_dir / "pg").resolve()
    return {
        "database_url": f"postgresql+psycopg://postgres@/allotment?host={socket_dir}",
        "broker_url": f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0",
        "result_backend": f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/1",
    }


def _raw_values(environ: Mapping[str, str]) -> dict[str, str]:
    names = Settings.model_fields
    return {name: environ[name.upper()] for name in names if name.upper() in environ}


def _secret_key(var_dir: Path) -> str:
    """A per-checkout development key, kept under var/ so restarts keep sessions valid."""
    path = var_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; raise SettingsError naming the variable."""
    raw: dict[str, object] = dict(_raw_values(environ))
    try:
        settings = Settings(**raw)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _named(exc, lambda err: str(err["loc"][0]).upper()) from None
    return _complete(settings)


# The exit status of a process refusing its settings: gunicorn's "app failed to load", so a
# gunicorn master whose worker refuses (started without config/gunicorn.py) stops instead of
# starting the worker again and again.
SETTINGS_EXIT_STATUS = 4


def settings_or_exit(environ: Mapping[str, str]) -> Settings:
    """``load_settings`` where a process starts (web, workers, beat, Flower, the ``flask`` CLI):
    a bad value ends the process with the message naming the variable on stderr, not a
    traceback, and exit status SETTINGS_EXIT_STATUS."""
    try:
        return load_settings(environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(SETTINGS_EXIT_STATUS) from None


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:8000``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def embedded_redis_port(environ: Mapping[str, str]) -> int:
    """EMBEDDED_REDIS_PORT: where the run command's embedded Redis listens (its own setting,
    not one of Settings: no other process reads it)."""
    try:
        return TypeAdapter(Port).validate_python(environ.get("EMBEDDED_REDIS_PORT", EMBEDDED_REDIS_PORT))
    except ValidationError as exc:
        raise _named(exc, lambda err: "EMBEDDED_REDIS_PORT") from None


def _named(exc: ValidationError, variable: Callable[[Any], str]) -> SettingsError:
    """A SettingsError naming each variable ``exc`` found wrong, and why."""
    problems = "; ".join(f"{variable(err)}: {err['msg']}" for err in exc.errors())
    return SettingsError(f"invalid configuration: {problems}")


def _check_production(settings: Settings) -> None:
    for name in ("secret_key", "database_url", "broker_url"):
        if not getattr(settings, name):
            raise SettingsError(f"invalid configuration: {name.upper()}: required in production")
    if settings.oidc_issuer.startswith("http://"):
        raise SettingsError("invalid configuration: OIDC_ISSUER: must be https in production")
    if settings.password_hash_profile == "cheapest":  # noqa: S105 - a profile's name
        raise SettingsError("invalid configuration: PASSWORD_HASH_PROFILE: cheapest is for test suites, "
                            "not production")


def _complete(settings: Settings) -> Settings:
    """Fill in derived defaults: embedded URLs, trial database, placement, secret key."""
    updates: dict[str, object] = {}
    if settings.env == "production":
        _check_production(settings)
    if not settings.database_url:
        embedded = embedded_urls(settings.var_dir)
        updates["database_url"] = embedded["database_url"]
        # The run command starts the embedded Redis only when BROKER_URL is unset; with an
        # external broker, results default to that broker (below), not to a Redis not running.
        if not settings.broker_url:
            updates["broker_url"] = embedded["broker_url"]
            if not settings.result_backend:
                updates["result_backend"] = embedded["result_backend"]
    broker = updates.get("broker_url", settings.broker_url)
    if not broker:
        raise SettingsError("invalid configuration: BROKER_URL: required when DATABASE_URL is set")
    if not (updates.get("result_backend") or settings.result_backend):
        updates["result_backend"] = broker
    database_url = str(updates.get("database_url", settings.database_url))
    if not settings.trial_database_url:
        updates["trial_database_url"] = database_on(database_url, database_name(database_url) + "_trial")
    if not settings.placement_servers:
        updates["placement_servers"] = (_server_url(database_url),)
    if not settings.secret_key:
        updates["secret_key"] = _secret_key(settings.var_dir)
    if settings.promotion_purge_grace_seconds < settings.routing_cache_ttl:
        raise SettingsError("invalid configuration: PROMOTION_PURGE_GRACE_SECONDS: must be at least "
                            "ROUTING_CACHE_TTL (trial rows are purged once every cached route expired)")
    if settings.task_soft_time_limit >= settings.task_time_limit:
        raise SettingsError("invalid configuration: TASK_SOFT_TIME_LIMIT: must be below TASK_TIME_LIMIT")
    _check_mail(settings)
    return settings.model_copy(update=updates)


def _check_mail(settings: Settings) -> None:
    """SMTP login needs both halves, and TLS unless the server is this machine."""
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        name = "SMTP_PASSWORD" if settings.smtp_username else "SMTP_USERNAME"
        raise SettingsError(f"invalid configuration: {name}: SMTP_USERNAME and SMTP_PASSWORD go together")
    local = settings.smtp_host in ("127.0.0.1", "::1", "localhost")
    if settings.smtp_username and not (settings.smtp_starttls or settings.smtp_ssl or local):
        raise SettingsError("invalid configuration: SMTP_STARTTLS: a login needs STARTTLS or SMTP_SSL "
                            "(the password would cross the network in clear)")
    if settings.trial_reminder_days >= settings.trial_days:
        raise SettingsError("invalid configuration: TRIAL_REMINDER_DAYS: must be below TRIAL_DAYS")
