"""The names a hub.toml may use, by table (docs/configuration.md documents
each; tests/hub/test_config_docs.py compares), and the environment
variables that override keys."""

from __future__ import annotations

_TOP_KEYS = frozenset(
    {
        "listen",
        "health_listen",
        "database",
        "open_regions",
        "allowed_clients",
        "consent_text_version",
        "consent_text",
        "sms_outbox",
        "api_tls",
        "bank_tls",
        "keys",
        "timings",
        "banks",
        "metrics_listen",
        "admin_listen",
        "admin_clients",
        "hsm",
        "tracing",
    }
)
_TRACING_KEYS = frozenset({"enabled", "otlp_endpoint", "service_name", "sample_ratio"})
_TLS_KEYS = frozenset({"ca", "cert", "key"})
_KEYS_KEYS = frozenset(
    {
        "consent_signing_key",
        "consent_key_id",
        "key_encryption_key",
        "index_key",
        "face_provider_keys",
        "key_encryption_key_id",
        "previous_key_encryption_keys",
    }
)
_HSM_KEYS = frozenset(
    {
        "module",
        "token_label",
        "pin",
        "consent_signing_key_label",
        "key_encryption_key_label",
        "password_pepper_key_label",
        "previous_key_encryption_key_labels",
    }
)
ENV_OVERRIDES = {
    "CARDLOOKUP_HUB_LISTEN": "listen",
    "CARDLOOKUP_HUB_HEALTH_LISTEN": "health_listen",
    "CARDLOOKUP_HUB_DATABASE": "database",
    "CARDLOOKUP_HUB_METRICS_LISTEN": "metrics_listen",
    "CARDLOOKUP_HUB_ADMIN_LISTEN": "admin_listen",
    "CARDLOOKUP_HUB_HSM_PIN": "hsm.pin",
}
"""Environment variables that override a key of the file (addresses, the
database and secrets, which deployments inject rather than write down)."""
_BANK_KEYS = frozenset(
    {
        "code",
        "address",
        "addresses",
        "balancing",
        "server_name",
        "max_concurrent",
        "display_name",
        "english_name",
        "session",
    }
)
BALANCING_POLICIES = ("round_robin", "pick_first")
SESSION_MODES = ("off", "auto", "on")
_COUNT_TIMINGS = frozenset(
    {
        "breaker_failures",
        "sms_max_attempts",
        "password_max_failures",
        "sms_daily_cap_per_phone",
        "watch_streams_per_caller",
        "database_keepalive_count",
    }
)
