"""Settings, read from the environment (prefix ``GIS_IOC_``) and an optional ``.env`` file.

Build a :class:`Settings` inside ``create_app()`` or the CLI, never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The checkout (or installed source tree) that holds layers/, styles/, boundaries/ and config/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every setting of gis_ioc. The README's Configuration table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix="GIS_IOC_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=PROJECT_ROOT / "var",
        description="Data folder: the embedded PostGIS cluster, rendered configuration, logs.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Use this PostGIS (postgresql://user:pass@host:port/db) instead of the embedded cluster.",
    )
    server_database_url: SecretStr | None = Field(
        default=None,
        description="How the server connects (its least-privileged login role gis_ioc_server); default: the "
        "database of GIS_IOC_DATABASE_URL or the embedded cluster, as gis_ioc_server.",
    )
    db_port: int = Field(default=54329, ge=1, le=65535, description="Port of the embedded cluster (127.0.0.1).")
    db_name: str = Field(default="gis_ioc", description="Database name in the embedded cluster.")
    db_system_user: str = Field(
        default="gisioc",
        description="Unprivileged system user that runs the embedded cluster when gis-ioc runs as root.",
    )
    pg_bindir: Path | None = Field(
        default=None,
        description="PostgreSQL server binaries; default: the newest /usr/lib/postgresql/*/bin with PostGIS.",
    )
    db_pool_min: int = Field(default=1, ge=0, description="Connections the pool keeps open.")
    db_pool_max: int = Field(default=10, ge=1, description="Most connections the pool opens.")
    db_pool_max_lifetime: float = Field(default=3600.0, gt=0, description="Seconds before a connection is recycled.")
    db_statement_timeout_ms: int = Field(default=30000, ge=0, description="statement_timeout of API connections.")

    anonymous_statement_timeout_ms: int = Field(
        default=5000,
        ge=100,
        description="statement_timeout of work done for callers without an account (bounds what one anonymous "
        "request may cost the database).",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    public_url: str | None = Field(
        default=None,
        description="Address clients reach the server at (links, OpenAPI servers); default http://HOST:PORT.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated host[:port] names clients may reach the server by (Host header); "
        "others are refused with 400. Default: the public URL's host, HOST:PORT, localhost and 127.0.0.1.",
    )
    ogc_path: str = Field(default="/ogc", description="Base path of the OGC API.")
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")

    layers_dir: Path = Field(default=PROJECT_ROOT / "layers", description="The layer catalog (one YAML per layer).")
    styles_dir: Path = Field(default=PROJECT_ROOT / "styles", description="Layer styles.")
    config_dir: Path = Field(default=PROJECT_ROOT / "config", description="Indicators and other configuration.")
    boundaries_dir: Path = Field(default=PROJECT_ROOT / "boundaries", description="Administrative boundaries.")

    demo_seed: int = Field(default=20250701, description="Seed of the demo data generator.")
    privacy_threshold: int = Field(
        default=5, ge=1, description="Scenario figures about fewer people or households than this are suppressed."
    )
    chromium: Path = Field(
        default=Path("/usr/bin/chromium"),
        description="Chromium that prints meeting reports to PDF (Debian's package; never a downloaded browser).",
    )

    load_max_upload_mb: int = Field(default=1024, ge=1, description="Largest file accepted by POST /api/loads (MB).")
    load_max_unzipped_mb: int = Field(
        default=1024, ge=1, description="Most an archive (zip, KMZ) may unpack to (MB); larger ones are refused."
    )
    load_overlap_tolerance: float = Field(
        default=1.0, ge=0, description="Overlap area (m²) tolerated between features of a no-overlap layer (parcels)."
    )
    load_auto_approve_units: str = Field(
        default="",
        description="Comma-separated source units (trusted automated feeds) whose loads are approved at once.",
    )

    feedback_per_address_per_hour: int = Field(
        default=30, ge=1, description="Citizen reports accepted per hour from one address (429)."
    )
    feedback_per_phone_per_day: int = Field(
        default=5, ge=1, description="Citizen reports accepted per day for one phone number (429)."
    )
    auth_login_attempts_per_minute: int = Field(
        default=10, ge=1, description="Login attempts allowed per minute from one address for one user name (429)."
    )
    auth_max_failed_logins: int = Field(
        default=5, ge=1, le=5, description="Failed logins in a row that lock an account (at most 5)."
    )
    auth_lockout_minutes: int = Field(default=30, ge=1, description="How long a lockout after failed logins lasts.")
    auth_idle_minutes: int = Field(default=15, ge=1, le=15, description="Idle minutes that end a user's session.")
    auth_admin_idle_minutes: int = Field(
        default=5, ge=1, le=5, description="Idle minutes that end an administrator's session."
    )
    auth_session_hours: int = Field(default=12, ge=1, le=24, description="Longest a session lasts, active or not.")
    auth_inactive_days: int = Field(
        default=45, ge=1, le=45, description="Days without a login after which an account is locked."
    )
    auth_trusted_networks: str = Field(
        default="127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        description="The government network (CIDRs); from elsewhere only accounts with a second factor log in.",
    )
    max_request_mb: int = Field(
        default=16, ge=1, description="Largest request body accepted, except file uploads to /api/loads (MB)."
    )
    oidc_issuer: str | None = Field(default=None, description="Single sign-on: the OpenID Connect issuer (iss).")
    oidc_audience: str | None = Field(default=None, description="Single sign-on: the audience (aud) tokens carry.")
    oidc_jwks_url: str | None = Field(default=None, description="Single sign-on: the issuer's JWKS address.")
    oidc_algorithms: str = Field(
        default="RS256,ES256", description="Single sign-on: accepted signature algorithms (asymmetric only)."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call the API from a browser (none by default)."
    )
    audit_retention_days: int = Field(
        default=365, ge=30, description="Days the audit trail is kept by `gis-ioc audit prune` (12 months)."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Server processes (`gis-ioc serve --workers`); default: the machine's cores. Any worker "
        "answers any request: shared state lives in PostgreSQL.",
    )
    database_replica_urls: str = Field(
        default="",
        description="Comma-separated libpq addresses of read replicas (streaming standbys) the server connects "
        "to as its role: read-only doors go there, writes and a writer's own next reads to the primary.",
    )
    replica_max_lag_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A replica further behind the primary than this is not read from (its lag is in /readyz).",
    )
    job_workers: int = Field(default=2, ge=1, le=64, description="Background jobs one server process runs at once.")
    job_retention_hours: float = Field(
        default=24.0,
        gt=0,
        description="Hours a finished job and its file are kept (exports, maps, reports, processes).",
    )
    tile_cache_mb: int = Field(
        default=64, ge=0, description="Memory of each server process for vector tiles (0: no tile cache)."
    )
    feature_cache_mb: int = Field(
        default=64,
        ge=0,
        description="Memory of each server process for GeoJSON answers (items pages, features) of GET requests "
        "(0: none); entries follow the layer's data version and live at most a minute.",
    )
    mqtt_host: str = Field(default="127.0.0.1", description="Address gis-ioc's MQTT broker (mosquitto) listens on.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Port gis-ioc's MQTT broker listens on.")
    mqtt_home: Path | None = Field(
        default=None,
        description="Folder of the broker: configuration, password and ACL files, persistence, log; default "
        "GIS_IOC_HOME/mosquitto.",
    )
    mqtt_tls_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the broker's TLS listener for field devices (8883 is usual); 0: no TLS listener.",
    )
    mqtt_tls_host: str = Field(default="0.0.0.0", description="Address the broker's TLS listener listens on.")  # noqa: S104
    mqtt_tls_cert: Path | None = Field(
        default=None,
        description="The TLS listener's certificate (PEM, the full chain); default: a self-signed certificate "
        "made under GIS_IOC_MQTT_HOME, for trials only.",
    )
    mqtt_tls_key: Path | None = Field(
        default=None, description="The private key (PEM, unencrypted) of GIS_IOC_MQTT_TLS_CERT."
    )
    mqtt_allow_plain: bool = Field(
        default=False,
        description="Let the plain (unencrypted) listener listen on an address other than loopback: device "
        "passwords then cross the network in clear.",
    )
    mosquitto: Path = Field(default=Path("/usr/sbin/mosquitto"), description="The broker (Debian's mosquitto).")
    mqtt_max_queued_messages: int = Field(
        default=1_000_000,
        ge=1000,
        description="Readings the broker keeps for a disconnected ingester (its persistent session) before "
        "refusing more.",
    )
    ingest_batch_size: int = Field(
        default=500, ge=1, le=10000, description="Most MQTT messages the ingester stores in one transaction."
    )
    ingest_batch_wait_ms: int = Field(
        default=50, ge=1, le=10000, description="How long the ingester waits to fill a batch before storing it."
    )
    ingest_clock_skew_minutes: int = Field(
        default=5, ge=0, description="A reading timed further ahead of the server's clock than this is flagged."
    )
    ingest_retry_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between the ingester's attempts to reach the broker or PostGIS."
    )

    @property
    def base_url(self) -> str:
        """The public address without a trailing slash."""
        url = self.public_url or f"http://{self.host}:{self.port}"
        return url.rstrip("/")

    @property
    def hosts(self) -> frozenset[str]:
        """The Host header values accepted (lower case; with and without the port)."""
        from urllib.parse import urlsplit

        names = {n.strip().lower() for n in self.allowed_hosts.split(",") if n.strip()}
        if not names:
            public = urlsplit(self.base_url)
            names = {
                public.netloc.lower(),
                f"{self.host}:{self.port}",
                f"localhost:{self.port}",
                f"127.0.0.1:{self.port}",
            }
        return frozenset(names | {n.rsplit(":", 1)[0] for n in names if not n.endswith("]")})

    @property
    def embedded(self) -> bool:
        """True when gis_ioc runs its own cluster (no ``GIS_IOC_DATABASE_URL``)."""
        return self.database_url is None
