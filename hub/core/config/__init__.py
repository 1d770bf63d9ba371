"""Every setting of the hub, in one typed place.

A hub reads one TOML file (`cardlookup-hub --config hub.toml`), then a few
environment overrides (CARDLOOKUP_HUB_LISTEN, CARDLOOKUP_HUB_DATABASE,
CARDLOOKUP_HUB_HEALTH_LISTEN). Regions and banks are configuration, not code
(R2): the file lists the banks (at least one; names default to the
registry's) and the open regions (default: the pilot's, see docs/rules.md
R2). `HubConfig.dev()` builds the configuration the demo and tests use from
a development PKI directory.

The file is documented by example: docs/examples/hub.toml (every key, with
comments; paths are relative to the file), shown in docs/hub-engine.md and
loaded by tests/hub/test_config_file.py. Unknown keys are refused, not
ignored: a misspelt key would otherwise silently leave a default in force.
`cardlookup-hub` prints a ConfigError as one line and exits with status 2.
"""

from hub.core.config.hub_config import HubConfig
from hub.core.config.keys import (
    _BANK_KEYS,
    _HSM_KEYS,
    _KEYS_KEYS,
    _TLS_KEYS,
    _TOP_KEYS,
    _TRACING_KEYS,
    BALANCING_POLICIES,
    ENV_OVERRIDES,
    SESSION_MODES,
)
from hub.core.config.reader import ConfigError
from hub.core.config.settings import (
    DEFAULT_CONSENT_TEXT,
    DEFAULT_CONSENT_TEXT_VERSION,
    BankEndpoint,
    HsmSettings,
    Timings,
    TlsFiles,
    TracingSettings,
)

__all__ = [
    "BALANCING_POLICIES",
    "DEFAULT_CONSENT_TEXT",
    "DEFAULT_CONSENT_TEXT_VERSION",
    "ENV_OVERRIDES",
    "SESSION_MODES",
    "_BANK_KEYS",
    "_HSM_KEYS",
    "_KEYS_KEYS",
    "_TLS_KEYS",
    "_TOP_KEYS",
    "_TRACING_KEYS",
    "BankEndpoint",
    "ConfigError",
    "HsmSettings",
    "HubConfig",
    "Timings",
    "TlsFiles",
    "TracingSettings",
]
