"""Settings for every service, read from the environment (prefix ``DARKROOM_``).

One shared base holds what every service needs (Kafka, S3, telemetry, consumer policy);
one class per service adds what is its own: its database and its HTTP port, read from
``DARKROOM_<SERVICE>_DATABASE_URL`` and ``DARKROOM_<SERVICE>_HTTP_PORT`` so that one
environment can hold the settings of the whole stack.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from darkroom.common.events import FAILED_LISTED

LOCAL_DATABASE = "postgresql://darkroom:darkroom@127.0.0.1:5432/darkroom_{service}"


class CommonSettings(BaseSettings):
    """What every Darkroom process reads: the infrastructure and the shared policies."""

    model_config = SettingsConfigDict(env_prefix="DARKROOM_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated."
    )
    topic_partitions: int = Field(
        8,
        ge=1,
        description="Partitions per topic. A replica of metadata, dedup or tagging consumes"
        " new uploads with two consumers per worker process, so 8 partitions serve two replicas"
        " of two workers; consumers past the partitions sit idle. Topics are created with it"
        " when missing; topics that exist keep their count.",
    )
    topic_replication_factor: int = Field(1, ge=1, description="Replicas of each topic.")
    s3_endpoint: str = Field("http://127.0.0.1:9000", description="S3-compatible endpoint URL.")
    s3_access_key: str = Field("darkroom", description="S3 access key.")
    s3_secret_key: SecretStr = Field(SecretStr("darkroom-secret"), description="S3 secret key.")
    s3_region: str = Field("us-east-1", description="S3 region name.")
    bucket_originals: str = Field("originals", description="Bucket of original uploads.")
    bucket_derived: str = Field("derived", description="Bucket of thumbnails and previews.")
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector URL; telemetry is exported only when set."
    )
    log_level: str = Field("INFO", description="Root log level.")
    transient_retry_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a message whose handler meets transient faults (the database, "
        "S3 or Kafka restarting) is retried before it is dead-lettered; under Kafka's 5-minute "
        "poll interval.",
        lt=300,
    )
    retry_max_backoff_seconds: float = Field(
        10.0, gt=0, description="Cap of the exponential backoff between attempts."
    )
    dlq_window: int = Field(
        100, ge=1, description="Messages over which the dead-letter share is measured."
    )
    dlq_max_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of dead-lettered messages in the window that stops the consumer.",
    )
    outbox_batch_size: int = Field(100, ge=1, description="Outbox rows published per round.")
    outbox_poll_seconds: float = Field(
        1.0, gt=0, description="Outbox poll interval when no NOTIFY arrives."
    )
    shutdown_grace_seconds: float = Field(
        20.0, gt=0, description="Time in-flight messages get to finish on SIGTERM."
    )


def _own(service: str, name: str, default: Any, description: str, **bounds: Any) -> Any:
    """A setting that belongs to one service: ``DARKROOM_<SERVICE>_<NAME>``; ``bounds`` as
    pydantic's ``Field`` takes them (``ge=1``)."""
    env = f"DARKROOM_{service.upper()}_{name.upper()}"
    return Field(default, validation_alias=AliasChoices(env), description=description, **bounds)


class ServiceSettings(CommonSettings):
    """The base of one service's settings."""

    service: ClassVar[str]
    database_url: str
    http_host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    http_port: int


class SealingSettings(ServiceSettings):
    """The base of the services that hold webhook secrets: the gateway seals them, notify
    opens them to sign (``darkroom.common.sealing``)."""

    sealing_keys: SecretStr | None = Field(
        None,
        description="Fernet keys, comma-separated, that seal webhook secrets at rest and on"
        " Kafka (the first seals, any opens); the gateway and notify do not start without"
        " one: `python -m darkroom.common.sealing` makes one.",
    )


class IngestSettings(SealingSettings):
    service: ClassVar[str] = "ingest"
    database_url: str = _own(
        "ingest", "database_url", LOCAL_DATABASE.format(service="ingest"), "Ingest's PostgreSQL."
    )
    http_port: int = _own("ingest", "http_port", 8000, "Port of the gateway's HTTP API.")
    tus_expiry_seconds: int = _own(
        "ingest",
        "tus_expiry_seconds",
        24 * 3600,
        "How long an unfinished resumable upload is kept before it is cleaned away.",
    )
    cors_origins: str = _own(
        "ingest",
        "cors_origins",
        "",
        "Browser origins, comma-separated (https://uploads.example.org), whose pages may call"
        " the API, such as an Uppy or tus-js-client uploader; none by default.",
    )


class MetadataSettings(ServiceSettings):
    service: ClassVar[str] = "metadata"
    database_url: str = _own(
        "metadata",
        "database_url",
        LOCAL_DATABASE.format(service="metadata"),
        "Metadata's PostgreSQL.",
    )
    http_port: int = _own("metadata", "http_port", 8001, "Port of /healthz and /readyz.")
    workers: int = _own("metadata", "workers", 2, "Processes that extract metadata in parallel.")
    extraction_timeout_seconds: float = _own(
        "metadata", "extraction_timeout_seconds", 60.0, "Time one file's extraction may take."
    )
    max_image_bytes: int = _own(
        "metadata",
        "max_image_bytes",
        256 * 1024 * 1024,
        "Largest image read into memory; a larger one fails with a reason.",
    )


class DedupSettings(ServiceSettings):
    service: ClassVar[str] = "dedup"
    database_url: str = _own(
        "dedup", "database_url", LOCAL_DATABASE.format(service="dedup"), "Dedup's PostgreSQL."
    )
    http_port: int = _own("dedup", "http_port", 8002, "Port of /healthz and /readyz.")
    workers: int = _own("dedup", "workers", 2, "Processes that hash media in parallel.")
    hashing_timeout_seconds: float = _own(
        "dedup", "hashing_timeout_seconds", 60.0, "Time one file's hashing may take."
    )
    max_image_bytes: int = _own(
        "dedup",
        "max_image_bytes",
        256 * 1024 * 1024,
        "Largest image read into memory; a larger one is matched by its bytes only.",
    )
    # Measured on the labelled corpus set (bench/dedup_accuracy.py, bench/RESULTS.md): every
    # variant within dHash 10 and pHash 20 but one; the nearest different photos at dHash 8
    # with pHash 32, and pHash 8 with dHash 25. Both must hold.
    near_dhash_distance: int = _own(
        "dedup",
        "near_dhash_distance",
        8,
        "Largest dHash distance (of 64 bits) at which two pictures are near duplicates.",
    )
    near_phash_distance: int = _own(
        "dedup",
        "near_phash_distance",
        20,
        "Largest pHash distance (of 64 bits) at which two pictures are near duplicates.",
    )


class TaggingSettings(ServiceSettings):
    service: ClassVar[str] = "tagging"
    database_url: str = _own(
        "tagging",
        "database_url",
        LOCAL_DATABASE.format(service="tagging"),
        "Tagging's PostgreSQL.",
    )
    http_port: int = _own("tagging", "http_port", 8003, "Port of /healthz and /readyz.")
    workers: int = _own("tagging", "workers", 2, "Processes that run face and safety models.")
    analysis_timeout_seconds: float = _own(
        "tagging", "analysis_timeout_seconds", 120.0, "Time one file's AI analysis may take."
    )
    max_image_bytes: int = _own(
        "tagging",
        "max_image_bytes",
        256 * 1024 * 1024,
        "Largest image read into memory for AI tagging; a larger one fails with a reason.",
    )
    face_image_size: int = _own(
        "tagging",
        "face_image_size",
        1024,
        "Long side, in pixels, of the picture faces are looked for in.",
    )
    face_upsample: int = _own(
        "tagging",
        "face_upsample",
        1,
        "Times dlib's detector doubles the picture first: 1 finds faces down to ~40 px.",
    )
    # Measured on the corpus (bench/RESULTS.md, bench/face_orders.py): photos of one person lie
    # within 0.52 of each other, of two people 0.71 apart or more; at dlib's own 0.6, strangers'
    # faces joined a named person in most orders of arrival, at 0.55 in none.
    face_distance: float = _own(
        "tagging",
        "face_distance",
        0.55,
        "Largest distance between a face's embedding and a person's mean at which it joins.",
    )
    face_min_pixels: int = _own(
        "tagging",
        "face_min_pixels",
        50,
        "Narrowest face recognised, in pixels of the picture faces are looked for in; smaller "
        "faces give embeddings too unreliable to tell people apart and are left out.",
    )
    safety_min_score: float = _own(
        "tagging", "safety_min_score", 0.5, "Least nudenet score for a label to count."
    )
    recluster_interval_seconds: float = _own(
        "tagging",
        "recluster_interval_seconds",
        600.0,
        "How often faces are re-clustered (never undoing a user's decision).",
    )


class NotifySettings(SealingSettings):
    service: ClassVar[str] = "notify"
    database_url: str = _own(
        "notify", "database_url", LOCAL_DATABASE.format(service="notify"), "Notify's PostgreSQL."
    )
    http_port: int = _own("notify", "http_port", 8004, "Port of /healthz and /readyz.")
    smtp_host: str = _own("notify", "smtp_host", "127.0.0.1", "SMTP relay host.")
    smtp_port: int = _own("notify", "smtp_port", 2525, "SMTP relay port.")
    smtp_username: str | None = _own("notify", "smtp_username", None, "SMTP login, if any.")
    smtp_password: SecretStr | None = _own("notify", "smtp_password", None, "SMTP password.")
    smtp_starttls: bool = _own("notify", "smtp_starttls", False, "Upgrade with STARTTLS.")
    smtp_tls: bool = _own("notify", "smtp_tls", False, "Connect with implicit TLS.")
    mail_from: str = _own("notify", "mail_from", "darkroom@localhost", "Sender address.")
    smtp_timeout_seconds: float = _own(
        "notify", "smtp_timeout_seconds", 15.0, "Time one SMTP conversation may take."
    )
    webhook_timeout_seconds: float = _own(
        "notify", "webhook_timeout_seconds", 10.0, "Time a webhook receiver has to answer."
    )
    webhook_private_targets: bool = _own(
        "notify",
        "webhook_private_targets",
        False,
        "Webhooks may go to private, loopback and link-local addresses (receivers on the"
        " deployment's own network); off, such a webhook fails with the reason.",
    )
    retry_base_seconds: float = _own(
        "notify", "retry_base_seconds", 30.0, "Wait before the first retry; doubled each time."
    )
    retry_max_interval_seconds: float = _own(
        "notify", "retry_max_interval_seconds", 3600.0, "Longest wait between two attempts."
    )
    retry_for_seconds: float = _own(
        "notify",
        "retry_for_seconds",
        24 * 3600.0,
        "How long a notification is retried before it is recorded as failed.",
    )
    dispatch_interval_seconds: float = _own(
        "notify", "dispatch_interval_seconds", 1.0, "How often due notifications are sent."
    )
    unconfirmed_after_seconds: float = _own(
        "notify",
        "unconfirmed_after_seconds",
        300.0,
        "A notification claimed this long ago with no outcome recorded (its sender died) is "
        "sent again, with the same Message-ID or webhook-id.",
    )
    failed_files_listed: int = _own(
        "notify",
        "failed_files_listed",
        50,
        f"Failed files named in an e-mail, at most the {FAILED_LISTED} an event names; the"
        " rest counted.",
        ge=0,
        le=FAILED_LISTED,
    )

    @model_validator(mode="after")
    def _a_send_fits(self) -> NotifySettings:
        """One send (an SMTP conversation, a webhook call) ends before its claim lapses, and
        within a stop's grace: else it would go twice (with the same id) in normal running."""
        longest = max(self.smtp_timeout_seconds, self.webhook_timeout_seconds)
        if self.unconfirmed_after_seconds < 2 * longest:  # a send, then its outcome recorded
            raise ValueError(
                f"DARKROOM_NOTIFY_UNCONFIRMED_AFTER_SECONDS ({self.unconfirmed_after_seconds:g})"
                f" must be at least twice as long as a send may take ({longest:g} s, the SMTP or"
                " webhook timeout): a send still running would be claimed and sent again"
            )
        if longest >= self.shutdown_grace_seconds:
            raise ValueError(
                f"the SMTP and webhook timeouts ({longest:g} s) must be shorter than"
                f" DARKROOM_SHUTDOWN_GRACE_SECONDS ({self.shutdown_grace_seconds:g}): a send"
                " still running when a stop's grace ends is cut short and sent again"
            )
        return self


SERVICE_SETTINGS: tuple[type[ServiceSettings], ...] = (
    IngestSettings,
    MetadataSettings,
    DedupSettings,
    TaggingSettings,
    NotifySettings,
)


def env_names(settings: type[CommonSettings]) -> list[str]:
    """Every environment variable a settings class reads, for deploy files and their tests."""
    prefix = settings.model_config.get("env_prefix", "")
    names = []
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.append(str(alias.choices[0]))
        else:
            names.append(f"{prefix}{field_name}".upper())
    return names
