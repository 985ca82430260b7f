"""Settings read once from the environment; every other module takes them from here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
MIGRATIONS_DIR = PROJECT_ROOT / "clickhouse"

# Topic names (DESIGN.md section 3).
TOPIC_RAW_SERVICE_PING = "usage.raw.service_ping"
TOPIC_RAW_SEAT_LINK = "usage.raw.seat_link"
TOPIC_RAW_VERSION_CHECK = "usage.raw.version_check"
TOPIC_RAW_SNOWPLOW = "usage.raw.snowplow"
TOPIC_NORMALIZED_SERVICE_PING = "usage.normalized.service_ping"
TOPIC_NORMALIZED_SEAT_LINK = "usage.normalized.seat_link"
TOPIC_NORMALIZED_VERSION_CHECK = "usage.normalized.version_check"
TOPIC_NORMALIZED_SNOWPLOW = "usage.normalized.snowplow"
TOPIC_DLQ = "usage.dlq"
TOPIC_ALERTS = "usage.alerts"
TOPIC_LANDED = "usage.landed"  # sinks announce which scopes they stored data for (alert evaluation)
# Reference data (CRM, billing, licenses): compacted, key = natural id, value = JSON, null value = delete.
TOPIC_REF_LICENSES = "usage.ref.licenses"
TOPIC_REF_SUBSCRIPTIONS = "usage.ref.subscriptions"
TOPIC_REF_ACCOUNTS = "usage.ref.accounts"
TOPIC_REF_BILLING_ACCOUNTS = "usage.ref.billing_accounts"
TOPIC_REF_NAMESPACES = "usage.ref.namespaces"
TOPIC_REF_ACCOUNT_MAPPINGS = "usage.ref.account_mappings"
REFERENCE_TOPICS = (TOPIC_REF_LICENSES, TOPIC_REF_SUBSCRIPTIONS, TOPIC_REF_ACCOUNTS, TOPIC_REF_BILLING_ACCOUNTS,
                    TOPIC_REF_NAMESPACES, TOPIC_REF_ACCOUNT_MAPPINGS)

# Raw topics are the replay source (kept forever); normalized and DLQ topics are working sets.
RAW_TOPICS = (TOPIC_RAW_SERVICE_PING, TOPIC_RAW_SEAT_LINK, TOPIC_RAW_VERSION_CHECK, TOPIC_RAW_SNOWPLOW)
RAW_RETENTION_MS = -1
NORMALIZED_RETENTION_MS = 7 * 24 * 3600 * 1000
DLQ_RETENTION_MS = 90 * 24 * 3600 * 1000

# Largest request body the collector accepts, after decompression. Kafka's broker and producer
# limits are raised to match (see streams/kafka/broker.py and streams/collector/).
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def topic_config(topic: str) -> dict[str, str]:
    """Broker-side config every topic of ours is created with."""
    if topic in REFERENCE_TOPICS:  # the latest value per key is kept forever; tombstones delete keys
        return {"max.message.bytes": str(MAX_MESSAGE_BYTES), "cleanup.policy": "compact"}
    if topic in RAW_TOPICS:
        retention = RAW_RETENTION_MS
    elif topic == TOPIC_DLQ:
        retention = DLQ_RETENTION_MS
    else:
        retention = NORMALIZED_RETENTION_MS
    return {"max.message.bytes": str(MAX_MESSAGE_BYTES), "retention.ms": str(retention)}


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Unset optional values mean "use the embedded/local default"."""

    kafka_bootstrap_servers: str | None = None  # KAFKA_BOOTSTRAP_SERVERS: use this cluster instead of a local one
    clickhouse_url: str | None = None  # CLICKHOUSE_URL: a ClickHouse server instead of the embedded warehouse service
    warehouse_port: int = 8123  # DENOMAS_WAREHOUSE_PORT: the embedded warehouse service (ClickHouse HTTP) on loopback
    warehouse_database: str = "usage"  # DENOMAS_WAREHOUSE_DATABASE: tests isolate themselves in databases of their own
    data_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "run")  # DENOMAS_DATA_DIR
    cache_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".cache")  # DENOMAS_CACHE_DIR
    topic_partitions: int = 4  # DENOMAS_TOPIC_PARTITIONS
    collector_host: str = "127.0.0.1"
    collector_port: int = 8080  # DENOMAS_COLLECTOR_PORT
    worker_web_port: int = 6066  # DENOMAS_WORKER_PORT
    sink_batch_size: int = 50  # records per insert (Seat Links, version checks, ...)
    ping_batch_size: int = 10  # pings per normalize step and per insert: ~20k rows for 2,000-metric pings
    event_batch_size: int = 5000  # Snowplow events per insert: small rows, so big batches (few parts)
    sink_batch_seconds: float = 1.0
    topic_prefix: str = ""  # DENOMAS_TOPIC_PREFIX: share a cluster between environments (and tests)
    app_id: str = "denomas-usage"  # DENOMAS_APP_ID: the Faust app id = the Kafka consumer group
    releases_csv: Path | None = None  # DENOMAS_RELEASES_CSV: the release list the Version Check endpoint answers from
    alert_rules: Path | None = None  # DENOMAS_ALERT_RULES: alert rule file (default schemas/alert_rules.yml)
    # DENOMAS_VERSION_CHECK_REPLAY=1: Version Check answers as of the earlier day a replaying sender gives in the
    # X-Denomas-As-Of header (the demo's fleet, a backfill); off: always as of today, the header is ignored.
    version_check_replay: bool = False

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "chdb"

    @property
    def warehouse_url(self) -> str:
        """Where every process reaches the warehouse (clickhouse-connect): a ClickHouse server, or the embedded
        engine's service (`denomas-usage warehouse`)."""
        return self.clickhouse_url or f"http://127.0.0.1:{self.warehouse_port}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "kafka_bootstrap_servers": env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            "clickhouse_url": env.get("CLICKHOUSE_URL") or None,
            "warehouse_port": int(env.get("DENOMAS_WAREHOUSE_PORT", "8123")),
            "warehouse_database": env.get("DENOMAS_WAREHOUSE_DATABASE", "usage"),
            "data_dir": _env_path("DENOMAS_DATA_DIR", PROJECT_ROOT / "run"),
            "cache_dir": _env_path("DENOMAS_CACHE_DIR", PROJECT_ROOT / ".cache"),
            "topic_partitions": int(env.get("DENOMAS_TOPIC_PARTITIONS", "4")),
            "collector_port": int(env.get("DENOMAS_COLLECTOR_PORT", "8080")),
            "worker_web_port": int(env.get("DENOMAS_WORKER_PORT", "6066")),
            "topic_prefix": env.get("DENOMAS_TOPIC_PREFIX", ""),
            "app_id": env.get("DENOMAS_APP_ID", "denomas-usage"),
            "releases_csv": _env_path("DENOMAS_RELEASES_CSV", Path()) if env.get("DENOMAS_RELEASES_CSV") else None,
            "alert_rules": _env_path("DENOMAS_ALERT_RULES", Path()) if env.get("DENOMAS_ALERT_RULES") else None,
            "version_check_replay": env.get("DENOMAS_VERSION_CHECK_REPLAY", "") in ("1", "true", "yes"),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
