"""Run-time reloads of the configuration (issue 11, issue 24): SIGHUP and
the admin service's Reload both run `HubServer.reload` (ReloadMixin), which
reads and checks everything first and then applies all of it or nothing;
and the checks of the key files a start and a reload share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cardlookup.pki import load_ed25519_private, load_ed25519_public, load_secret
from hub.core.config import ConfigError, HubConfig
from hub.core.logging import get_logger
from hub.keys.crypto import Custody, HubKeys, load_custody, load_previous_keks
from hub.keys.hsm import HsmError
from hub.runtime.listen import StartupError, check_tls
from hub.runtime.reload_diff import describe, fingerprints, in_effect
from hub.telemetry.metrics import HubMetrics

if TYPE_CHECKING:
    from hub.engine import QueryEngine
    from hub.fanout import Fanout
    from hub.keys.certs import ReloadableServerCredentials
    from hub.runtime.context import HubContext

log = get_logger("hub.process.server")  # the reload's lines keep the logger operators know


class ReloadMixin:
    """HubServer's reload; the attributes are HubServer's."""

    config: HubConfig
    config_path: Path | None
    context: HubContext | None
    metrics: HubMetrics
    _engine: QueryEngine | None
    _fanout: Fanout | None
    _credentials: ReloadableServerCredentials | None
    _admin_credentials: ReloadableServerCredentials | None
    _reload_lock: asyncio.Lock
    _files: dict[str, str]

    async def reload(self, config: HubConfig | None = None) -> list[str]:
        """Applies a new configuration without a restart and returns what
        changed (issue 24). Without `config`, re-reads `config_path`.
        Everything is read and checked first (the file; certificates parse,
        keys match them, chains end at the configured CAs; key files; keys
        on the token exist and allow their mechanism), then all is applied,
        or nothing. The one owner of reloads (SIGHUP and the admin Reload
        both come here): it logs `reload_refused` with the problem, or one
        `reload_applied` per change and `reload_needs_restart` per setting
        that changed but is not applied (docs/operations.md)."""
        async with self._reload_lock:
            try:
                new = config if config is not None else self._read_config()
                check_keys(new)
                check_tls(new)
                custody = load_custody(new)  # HSM objects and key files, read before anything changes
                files = fingerprints(new)
                applied, restart = describe(self.config, new, self._files, files)
                self._apply(in_effect(self.config, new), custody)
            except (ConfigError, StartupError, HsmError, OSError, ValueError, KeyError) as error:
                self.metrics.reloads.labels("failed").inc()
                log.error("reload_refused", error_type=type(error).__name__, problem=reload_problem(error))
                raise
            self._files = files
            self.metrics.reloads.labels("applied").inc()
            for change in applied:
                log.info("reload_applied", change=change)
            for change in restart:
                log.warning("reload_needs_restart", change=change)
            if not applied and not restart:
                log.info("reload_applied", change="nothing changed")
            log.info("hub_reloaded", changes=len(applied), needs_restart=len(restart))
            return applied + restart

    def _read_config(self) -> HubConfig:
        if self.config_path is None:
            raise ConfigError("this hub was started without a configuration file; nothing to re-read")
        return HubConfig.from_file(self.config_path)

    def _apply(self, new: HubConfig, custody: Custody) -> None:
        if self.context is None or self._engine is None or self._credentials is None:
            raise RuntimeError("the hub is not started")
        previous = load_previous_keks(new)  # read before anything is applied
        # Always staged again: the paths may be the same and the content new.
        self._credentials.update(new.api_tls)
        if self._admin_credentials is not None:
            self._admin_credentials.update(new.api_tls)
        self._engine.reconfigure(new)
        if self._fanout is not None:
            self._fanout.reconfigure(new)
        self.context.keys.reload(new, custody, previous)
        self.config = self.context.config = new
        for reloader in self.context.reloaders:
            reloader(new)


def load_keys(config: HubConfig) -> HubKeys:
    check_keys(config)
    try:
        return HubKeys.load(config)
    except HsmError as error:
        raise StartupError(str(error)) from None


def check_keys(config: HubConfig) -> None:
    """Every key file is usable (keys held in an HSM are checked by loading)."""
    hsm = config.hsm
    checks: tuple[tuple[str, Path, Callable[[Path], object]], ...] = (
        ("keys.index_key", config.index_key, load_secret),
    )
    if not (hsm and hsm.key_encryption_key_label):
        checks += (("keys.key_encryption_key", config.key_encryption_key, load_secret),)
    if not (hsm and hsm.consent_signing_key_label):
        checks += (("keys.consent_signing_key", config.consent_signing_key, load_ed25519_private),)
    checks += tuple(
        (f"keys.previous_key_encryption_keys.{key_id}", path, load_secret)
        for key_id, path in config.previous_key_encryption_keys.items()
    )
    checks += tuple(
        (f"keys.face_provider_keys.{key_id}", path, load_ed25519_public)
        for key_id, path in config.face_provider_keys.items()
    )
    for key, path, load in checks:
        try:
            load(path)
        except (OSError, ValueError):
            # The loaders' own messages may quote file content; name the key and the file only.
            raise StartupError(f"{key}: {path} does not hold a usable key") from None


def reload_problem(error: Exception) -> str:
    """A refused reload's cause in one line for the log and the admin answer:
    the hub's own errors name the setting (and the file); others get their
    class only (their text may quote file content)."""
    if isinstance(error, ConfigError | StartupError | HsmError):
        return str(error).split(": ", 1)[-1] if isinstance(error, ConfigError) else str(error)
    if isinstance(error, KeyError):
        return f"a configured key is missing ({type(error).__name__})"
    return f"a key or certificate file is not usable ({type(error).__name__})"
